// What the chat page and the agents page share: a chat record that never loses its place,
// the reading of an answer over SSE, and the composer's Send, Stop and New chat.
//
// Everything a page has rendered is saved in localStorage together with the cursor of the
// last event it rendered (generation and seq), in one record. After a reload it shows exactly
// what it had shown and asks the server only for the events after that cursor; after a dropped
// connection it does the same with backoff. It renders an event only if its seq is the next one,
// so nothing is shown twice and nothing is skipped, whatever the network does. One exception:
// once an answer is finished the server compacts it, and a text event then stands for a run of
// tokens, with the seq of the last one (and, after a cursor inside the run, the rest of it).
//
// A page passes `startChatPage` a view: what it stores and how it draws the answer. The
// elements both pages have (state badge, question, notice, composer, chat link) go by the same
// ids on each.

import { SseParser } from "./sse.js";

export const TERMINAL = new Set(["done", "cancelled", "error"]);
const ACTIVE = new Set(["connecting", "streaming", "stopping", "reconnecting"]);
const MAX_BACKOFF_MS = 30_000;

const $ = (id) => document.getElementById(id);

/**
 * What a page does its own way.
 * @typedef {object} ChatView
 * @property {string} storageKey where the record is saved in localStorage
 * @property {string} api the chat's endpoints: `${api}/{chatId}`, `.../stream`, `.../cancel`
 * @property {string} home the page's own path, to which `?chat={chatId}` links
 * @property {HTMLElement} live the element that is `aria-busy` while an answer runs
 * @property {() => object} blank the page's own fields of an empty record
 * @property {(chat: object) => void} render draw the page's part of a whole record
 * @property {(chat: object) => void} begin a new generation: clear the page's part
 * @property {(chat: object, type: string, value: unknown) => void} apply one event, not terminal
 * @property {(chat: object, type: string, value: unknown) => void} [end] a terminal event
 * @property {(state: string) => void} [onState] the answer's state changed
 */

/** @type {ChatView} */
let view;
let ui;
let chat;
let follower = null;
let retryMs = 2000; // until the server's `retry:` field says otherwise

// ---- the chat record ------------------------------------------------------------------------

function blankChat(chatId) {
  return { chatId, prompt: "", generation: null, seq: 0, ...view.blank(), state: "idle" };
}

function newChatId() {
  // Not crypto.randomUUID(): it only exists in secure contexts, and the demo may be opened
  // over plain http on a LAN address.
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The chat named in the URL (a link from another tab or server), else the stored one. */
function openChat() {
  const stored = JSON.parse(localStorage.getItem(view.storageKey) ?? "null");
  const fromUrl = new URLSearchParams(location.search).get("chat");
  if (fromUrl && fromUrl !== stored?.chatId) return { ...blankChat(fromUrl), state: "connecting" };
  return stored ?? blankChat(newChatId());
}

function save() {
  localStorage.setItem(view.storageKey, JSON.stringify(chat));
}

function cursor() {
  return chat.generation === null ? null : `${chat.generation}:${chat.seq}`;
}

/** The current chat's endpoint, or one beside it (`/stream`, `/cancel`, `/steer`). */
export function chatUrl(suffix = "") {
  return `${view.api}/${encodeURIComponent(chat.chatId)}${suffix}`;
}

// ---- rendering ------------------------------------------------------------------------------

function setState(state) {
  chat.state = state;
  ui.state.dataset.state = state;
  ui.state.textContent = state;
  view.live.setAttribute("aria-busy", String(ACTIVE.has(state)));
  ui.send.disabled = ACTIVE.has(state);
  ui.stop.disabled = !["streaming", "reconnecting"].includes(state);
  view.onState?.(state);
  save();
}

/** Show the question of the current chat (also when a `prompt` event tells it). */
export function showQuestion(text) {
  chat.prompt = text;
  ui.question.textContent = text;
  ui.questionCard.hidden = text === "";
}

export function showNotice(message) {
  ui.notice.textContent = message;
  ui.notice.hidden = message === "";
}

function renderAll() {
  showQuestion(chat.prompt);
  view.render(chat);
  ui.chatLink.textContent = chat.chatId;
  ui.chatLink.href = `${view.home}?chat=${encodeURIComponent(chat.chatId)}`;
  history.replaceState(null, "", ui.chatLink.href);
  setState(chat.state);
}

// ---- events ---------------------------------------------------------------------------------

/** A new run of the chat (first event, or a `reset`): what was shown belongs to an older one. */
function beginGeneration(generation) {
  chat.generation = generation;
  chat.seq = 0;
  view.begin(chat);
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
    view.end?.(chat, type, value);
    setState(type);
    return "terminal";
  }
  if (chat.state !== "streaming" && chat.state !== "stopping") setState("streaming");
  view.apply(chat, type, value);
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

/** Open the chat (from the URL or storage), draw it, wire the composer and resume reading. */
export function startChatPage(chatView) {
  view = chatView;
  ui = {
    state: $("state"),
    questionCard: $("question-card"),
    question: $("question"),
    notice: $("notice"),
    composer: $("composer"),
    prompt: $("prompt"),
    send: $("send"),
    stop: $("stop"),
    chatLink: $("chat-link"),
    newChat: $("new-chat"),
  };
  chat = openChat();

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
    if (ACTIVE.has(chat.state)) {
      setState(chat.state === "connecting" ? "connecting" : "reconnecting");
    }
    follow(resume);
  }
}
