// The chat page: sends a prompt, renders the answer token by token, and never loses its place.
//
// Everything the page has rendered is saved in localStorage together with the cursor of the
// last event it rendered (generation and seq), in one record. After a reload it shows exactly
// what it had shown and asks the server only for the events after that cursor; after a dropped
// connection it does the same with backoff. It renders an event only if its seq is the next one,
// so nothing is shown twice and nothing is skipped, whatever the network does. One exception:
// once an answer is finished the server compacts it, and a text event then stands for a run of
// tokens, with the seq of the last one (and, after a cursor inside the run, the rest of it).

import { SseParser } from "./sse.js";
import { SteerBox, steerText } from "./steer.js";

const STORAGE_KEY = "streamhub-demo:chat";
const TERMINAL = new Set(["done", "cancelled", "error"]);
const ACTIVE = new Set(["connecting", "streaming", "stopping", "reconnecting"]);
const MAX_BACKOFF_MS = 30_000;
// What a `cancelled` event's reason means to the reader.
const STOPPED = { cancelled: "Stopped by you", abandoned: "Stopped: nobody was reading" };

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"),
  questionCard: $("question-card"),
  question: $("question"),
  answer: $("answer"),
  answerMeta: $("answer-meta"),
  notice: $("notice"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  chatLink: $("chat-link"),
  newChat: $("new-chat"),
};
const steering = new SteerBox({
  form: $("steer"),
  input: $("steer-text"),
  list: $("steers"),
  url: () => chatUrl("/steer"),
  notify: showNotice,
});

let chat = openChat();
let follower = null;
let retryMs = 2000; // until the server's `retry:` field says otherwise

// ---- the chat record ------------------------------------------------------------------------

function blankChat(chatId) {
  return {
    chatId,
    prompt: "",
    generation: null,
    seq: 0,
    text: "",
    steers: [],
    meta: "",
    state: "idle",
  };
}

function newChatId() {
  // Not crypto.randomUUID(): it only exists in secure contexts, and the demo may be opened
  // over plain http on a LAN address.
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The chat named in the URL (a link from another tab or server), else the stored one. */
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
  return `/chat/${encodeURIComponent(chat.chatId)}${suffix}`;
}

// ---- rendering ------------------------------------------------------------------------------

function setState(state) {
  chat.state = state;
  ui.state.dataset.state = state;
  ui.state.textContent = state;
  ui.answer.setAttribute("aria-busy", String(ACTIVE.has(state)));
  ui.send.disabled = ACTIVE.has(state);
  ui.stop.disabled = !["streaming", "reconnecting"].includes(state);
  steering.setActive(["streaming", "reconnecting"].includes(state));
  save();
}

function showQuestion(text) {
  chat.prompt = text;
  ui.question.textContent = text;
  ui.questionCard.hidden = text === "";
}

function showMeta(text) {
  chat.meta = text;
  ui.answerMeta.textContent = text;
  ui.answerMeta.hidden = text === "";
}

function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = message === "";
}

function renderAll() {
  showQuestion(chat.prompt);
  ui.answer.replaceChildren(chat.text);
  steering.reset(chat.steers ?? []);
  showMeta(chat.meta);
  ui.chatLink.textContent = chat.chatId;
  ui.chatLink.href = `/?chat=${encodeURIComponent(chat.chatId)}`;
  history.replaceState(null, "", ui.chatLink.href);
  setState(chat.state);
}

// ---- events ---------------------------------------------------------------------------------

/** A new run of the chat (first event, or a `reset`): what was shown belongs to an older one. */
function beginGeneration(generation) {
  chat.generation = generation;
  chat.seq = 0;
  chat.text = "";
  chat.steers = [];
  ui.answer.replaceChildren();
  steering.reset([]);
  showMeta("");
}

/** Apply one SSE event; returns "terminal", "gap" (resume from the cursor) or "ok". */
function handleEvent({ type, data, lastEventId }) {
  const cut = lastEventId.lastIndexOf(":");
  const generation = lastEventId.slice(0, cut);
  const seq = Number(lastEventId.slice(cut + 1));
  if (generation !== chat.generation) beginGeneration(generation);
  if (type === "reset" || seq <= chat.seq) return "ok"; // already rendered before a reconnect
  const mergedText = type === "message" && data.startsWith('"');
  if (seq !== chat.seq + 1 && !mergedText) return "gap";
  chat.seq = seq;
  const value = JSON.parse(data);
  if (TERMINAL.has(type)) {
    if (type === "error") showNotice(value.message);
    if (type === "done") showMeta(`${value.tokens} tokens`); // the metadata the server set
    if (type === "cancelled") showMeta(STOPPED[value.reason] ?? "Stopped");
    setState(type);
    return "terminal";
  }
  if (chat.state !== "streaming" && chat.state !== "stopping") setState("streaming");
  if (type === "prompt") showQuestion(value.text);
  if (type === "steer") {
    chat.steers = [...(chat.steers ?? []), steerText(value)];
    steering.show(value);
  }
  if (type === "message") {
    chat.text += value;
    ui.answer.append(value);
  }
  save();
  return "ok";
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- following a stream ---------------------------------------------------------------------

/** Reads one answer to its end, reconnecting by cursor, until a terminal event or `stop()`. */
class Follower {
  #abort = new AbortController();
  #connection = null;
  #attempt = 0;
  #wake = null;

  stop() {
    this.#abort.abort();
  }

  /** Give up the current connection (the browser went offline) and resume when possible.
   * A connection over a network that is gone may otherwise hang until TCP times out. */
  drop() {
    this.#connection?.abort();
  }

  /** Skip the current backoff wait: the network is back, or a cancel is waiting to be read. */
  wake() {
    this.#wake?.();
  }

  async run(request) {
    const stopped = this.#abort.signal;
    for (;;) {
      this.#connection = new AbortController();
      const signal = AbortSignal.any([stopped, this.#connection.signal]);
      let outcome = "dropped";
      try {
        outcome = await this.#read(await request(signal));
      } catch {
        // A network error, or drop(): reconnect below, unless we were stopped.
      }
      if (stopped.aborted || outcome === "finished") return;
      if (TERMINAL.has(chat.state)) return; // a finished answer only checks once for a newer run
      setState("reconnecting");
      await this.#backoff(stopped);
      request = resume;
    }
  }

  async #read(response) {
    if (response.status === 204) return "finished"; // we already saw the terminal event
    if (response.status >= 400 && response.status < 500) return this.#refused(response);
    if (!response.ok) return "dropped";
    if (!TERMINAL.has(chat.state) && chat.state !== "stopping") setState("streaming");
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

  async #refused(response) {
    const detail = await errorDetail(response);
    if (response.status === 404 && TERMINAL.has(chat.state)) return "finished"; // expired since
    if (response.status === 404 && chat.generation === null) {
      setState("idle");
      showNotice("Nothing has been asked in this chat yet.");
      return "finished";
    }
    showNotice(detail);
    setState("error");
    return "finished";
  }

  #backoff(signal) {
    const delay = Math.min(retryMs * 2 ** this.#attempt, MAX_BACKOFF_MS);
    this.#attempt += 1;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, delay);
      signal.addEventListener("abort", done);
      this.#wake = done;
    });
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
  const previous = chat.state;
  setState("stopping");
  try {
    const response = await fetch(chatUrl("/cancel"), { method: "POST" });
    if (!response.ok) throw new Error(await errorDetail(response));
    follower?.wake(); // the stored `cancelled` event ends the stream
  } catch (error) {
    if (chat.state === "stopping") setState(previous);
    showNotice(`Could not stop the answer: ${error.message}`);
  }
}

function startNewChat() {
  follower?.stop();
  showNotice("");
  chat = blankChat(newChatId());
  renderAll();
  ui.prompt.focus();
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
ui.newChat.addEventListener("click", startNewChat);
window.addEventListener("offline", () => follower?.drop());
window.addEventListener("online", () => follower?.wake());

renderAll();
if (chat.state !== "idle") {
  if (ACTIVE.has(chat.state)) setState(chat.state === "connecting" ? "connecting" : "reconnecting");
  follow(resume);
}
