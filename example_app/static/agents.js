// The agent mode's page: one transcript written by several sources, and never losing its place.
//
// The first source's events (the planner's) arrive as plain SSE events; every other source's as
// the event `source`, whose data names it: {"source": "search", "event": ..., "data": ...}. The
// page groups consecutive parts of one source into a turn labelled with the source's name and
// colour, in the order the server sent them, which is the one order the hub stored. As on the
// chat page, what it rendered is saved with the cursor of the last event, and a reload or a
// dropped connection resumes from that cursor, so the transcript is the same as if nothing had
// happened: same turns, same order, same attribution.

import { SseParser } from "./sse.js";

const STORAGE_KEY = "streamhub-demo:agents";
const TERMINAL = new Set(["done", "cancelled", "error"]);
const ACTIVE = new Set(["connecting", "streaming", "stopping", "reconnecting"]);
const MAX_BACKOFF_MS = 30_000;
const SOURCES = {
  main: { label: "Planner", color: "#2563eb" },
  search: { label: "Search", color: "#059669" },
  calculator: { label: "Calculator", color: "#c2410c" },
};

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"),
  questionCard: $("question-card"),
  question: $("question"),
  legend: $("sources"),
  transcript: $("transcript"),
  notice: $("notice"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  chatLink: $("chat-link"),
  newChat: $("new-chat"),
};

let chat = openChat();
let follower = null;
let retryMs = 2000;

// ---- the chat record ------------------------------------------------------------------------

function blankChat(chatId) {
  return { chatId, prompt: "", generation: null, seq: 0, turns: [], sources: {}, state: "idle" };
}

function newChatId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function openChat() {
  const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
  const fromUrl = new URLSearchParams(location.search).get("chat");
  if (fromUrl && fromUrl !== stored?.chatId) return { ...blankChat(fromUrl), state: "connecting" };
  return stored ?? blankChat(newChatId());
}

function save() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(chat));
}

function cursor() {
  return chat.generation === null ? null : `${chat.generation}:${chat.seq}`;
}

function chatUrl(suffix = "") {
  return `/agents/${encodeURIComponent(chat.chatId)}${suffix}`;
}

// ---- rendering ------------------------------------------------------------------------------

function look(source) {
  if (SOURCES[source]) return SOURCES[source];
  let hue = 0;
  for (const c of source) hue = (hue * 31 + c.codePointAt(0)) % 360;
  return { label: source, color: `hsl(${hue} 60% 42%)` };
}

function turnElement(turn) {
  const { label, color } = look(turn.source);
  const element = document.createElement("article");
  element.className = "turn";
  element.dataset.source = turn.source;
  element.style.setProperty("--source-color", color);
  const name = document.createElement("span");
  name.className = "turn-source";
  name.textContent = label;
  const text = document.createElement("span");
  text.className = "turn-text";
  element.append(name, text);
  renderTurn(element, turn);
  return element;
}

function renderTurn(element, turn) {
  const chips = turn.results.map((result) => {
    const chip = document.createElement("span");
    chip.className = "turn-result";
    chip.textContent = result;
    return chip;
  });
  element.querySelector(".turn-text").replaceChildren(turn.text, ...chips);
}

function renderLegend() {
  ui.legend.replaceChildren(
    ...Object.entries(chat.sources).map(([source, status]) => {
      const item = document.createElement("li");
      const { label, color } = look(source);
      item.style.setProperty("--source-color", color);
      item.dataset.source = source;
      item.textContent = label;
      if (status !== "running") item.dataset.ended = status;
      return item;
    }),
  );
}

function setState(state) {
  chat.state = state;
  ui.state.dataset.state = state;
  ui.state.textContent = state;
  ui.transcript.setAttribute("aria-busy", String(ACTIVE.has(state)));
  ui.send.disabled = ACTIVE.has(state);
  ui.stop.disabled = !["streaming", "reconnecting"].includes(state);
  save();
}

function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = message === "";
}

function renderAll() {
  ui.question.textContent = chat.prompt;
  ui.questionCard.hidden = chat.prompt === "";
  ui.transcript.replaceChildren(...chat.turns.map(turnElement));
  renderLegend();
  ui.chatLink.textContent = chat.chatId;
  ui.chatLink.href = `/agents?chat=${encodeURIComponent(chat.chatId)}`;
  history.replaceState(null, "", ui.chatLink.href);
  setState(chat.state);
}

// ---- events ---------------------------------------------------------------------------------

function beginGeneration(generation) {
  chat.generation = generation;
  chat.seq = 0;
  chat.turns = [];
  chat.sources = {};
  ui.transcript.replaceChildren();
  renderLegend();
}

/** The turn that `source`'s next part goes into: the last one if it is that source's. */
function turnOf(source) {
  const last = chat.turns.at(-1);
  if (last?.source === source) return { turn: last, element: ui.transcript.lastElementChild };
  const turn = { source, text: "", results: [] };
  chat.turns.push(turn);
  const element = turnElement(turn);
  ui.transcript.append(element);
  return { turn, element };
}

function sourceSeen(source, status = "running") {
  const known = chat.sources[source];
  if (known === undefined || (status !== "running" && known !== status)) {
    chat.sources[source] = status;
    renderLegend();
  }
}

function addPart(source, event, value) {
  sourceSeen(source);
  const { turn, element } = turnOf(source);
  if (event === undefined || event === null) turn.text += typeof value === "string" ? value : "";
  else turn.results.push(`${event}: ${JSON.stringify(value)}`);
  renderTurn(element, turn);
}

function sourceEnded(source, event, value) {
  const how = { done: "done", cancelled: "stopped" }[event];
  sourceSeen(source, how ?? (value.reason === "producer_lost" ? "lost" : "failed"));
}

/** Apply one SSE event; returns "terminal", "gap" (resume from the cursor) or "ok". */
function handleEvent({ type, data, lastEventId }) {
  const cut = lastEventId.lastIndexOf(":");
  const generation = lastEventId.slice(0, cut);
  const seq = Number(lastEventId.slice(cut + 1));
  if (generation !== chat.generation) beginGeneration(generation);
  if (type === "reset" || seq <= chat.seq) return "ok";
  const mergedText = type === "message" && data.startsWith('"');
  if (seq !== chat.seq + 1 && !mergedText) return "gap";
  chat.seq = seq;
  const value = JSON.parse(data);
  if (TERMINAL.has(type)) {
    if (type === "error") showNotice(value.message);
    setState(type);
    return "terminal";
  }
  if (chat.state !== "streaming" && chat.state !== "stopping") setState("streaming");
  if (type === "message") addPart("main", null, value);
  else if (type === "source") {
    const { source, event, data: inner } = value;
    if (TERMINAL.has(event)) sourceEnded(source, event, inner);
    else if (event === "joined") sourceSeen(source, "joined");
    else addPart(source, event, inner);
  } else addPart("main", type, value);
  save();
  return "ok";
}

// ---- following a stream ---------------------------------------------------------------------

class Follower {
  #abort = new AbortController();
  #attempt = 0;

  stop() {
    this.#abort.abort();
  }

  async run(request) {
    const stopped = this.#abort.signal;
    for (;;) {
      let outcome = "dropped";
      try {
        outcome = await this.#read(await request(stopped));
      } catch {
        // A network error: reconnect below, unless we were stopped.
      }
      if (stopped.aborted || outcome === "finished" || TERMINAL.has(chat.state)) return;
      setState("reconnecting");
      const delay = Math.min(retryMs * 2 ** this.#attempt++, MAX_BACKOFF_MS);
      await new Promise((resolve) => setTimeout(resolve, delay));
      request = resume;
    }
  }

  async #read(response) {
    if (response.status === 204) return "finished";
    if (response.status >= 400 && response.status < 500) {
      showNotice(`${response.status}: ${await response.text()}`);
      setState(chat.generation === null ? "idle" : "error");
      return "finished";
    }
    if (!response.ok) return "dropped";
    let outcome = "dropped";
    const parser = new SseParser({
      onRetry: (ms) => {
        retryMs = ms;
      },
      onEvent: (event) => {
        if (outcome !== "dropped") return;
        this.#attempt = 0;
        const result = handleEvent(event);
        if (result === "terminal") outcome = "finished";
        if (result === "gap") outcome = "gap";
      },
    });
    const decoder = new TextDecoder();
    const body = response.body.getReader();
    try {
      while (outcome === "dropped") {
        const { value, done } = await body.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      body.cancel().catch(() => {});
    }
    return outcome === "finished" ? "finished" : "dropped";
  }
}

function resume(signal) {
  const url = new URL(chatUrl("/stream"), location.origin);
  const last = cursor();
  if (last !== null) url.searchParams.set("last_event_id", last);
  return fetch(url, { headers: { Accept: "text/event-stream" }, cache: "no-store", signal });
}

function follow(request) {
  follower?.stop();
  const current = new Follower();
  follower = current;
  current.run(request).finally(() => {
    if (follower === current) follower = null;
  });
}

// ---- user actions ---------------------------------------------------------------------------

function send(text) {
  showNotice("");
  chat = { ...blankChat(chat.chatId), prompt: text, state: "connecting" };
  renderAll();
  ui.prompt.value = "";
  follow((signal) =>
    fetch(chatUrl(), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ text }),
      signal,
    }),
  );
}

async function stop() {
  setState("stopping");
  const response = await fetch(chatUrl("/cancel"), { method: "POST" });
  if (!response.ok) showNotice(`Could not stop the answer: ${response.status}`);
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if (text !== "" && !ACTIVE.has(chat.state)) send(text);
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener("click", stop);
ui.newChat.addEventListener("click", () => {
  follower?.stop();
  showNotice("");
  chat = blankChat(newChatId());
  renderAll();
  ui.prompt.focus();
});

renderAll();
if (chat.state !== "idle") {
  if (ACTIVE.has(chat.state)) setState(chat.state === "connecting" ? "connecting" : "reconnecting");
  follow(resume);
}
