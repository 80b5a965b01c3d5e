// The chat page: sends a prompt, renders the answer token by token, and never loses its place
// (chat-core.js keeps the record, its cursor and the reading of the stream).
//
// What is its own: the answer as one text, the steering messages sent while it streamed, and
// a line under it that says how it ended.

import { chatUrl, showNotice, showQuestion, startChatPage } from "./chat-core.js";
import { SteerBox, steerText } from "./steer.js";

// What a `cancelled` event's reason means to the reader.
const STOPPED = { cancelled: "Stopped by you", abandoned: "Stopped: nobody was reading" };

const answer = document.getElementById("answer");
const answerMeta = document.getElementById("answer-meta");
const steering = new SteerBox({
  form: document.getElementById("steer"),
  input: document.getElementById("steer-text"),
  list: document.getElementById("steers"),
  url: () => chatUrl("/steer"),
  notify: showNotice,
});

function showMeta(chat, text) {
  chat.meta = text;
  answerMeta.textContent = text;
  answerMeta.hidden = text === "";
}

startChatPage({
  storageKey: "streamhub-demo:chat",
  api: "/chat",
  home: "/",
  live: answer,
  blank: () => ({ text: "", steers: [], meta: "" }),
  render(chat) {
    answer.replaceChildren(chat.text);
    steering.reset(chat.steers ?? []);
    showMeta(chat, chat.meta);
  },
  begin(chat) {
    chat.text = "";
    chat.steers = [];
    answer.replaceChildren();
    steering.reset([]);
    showMeta(chat, "");
  },
  apply(chat, type, value) {
    if (type === "prompt") showQuestion(value.text);
    if (type === "steer") {
      chat.steers = [...(chat.steers ?? []), steerText(value)];
      steering.show(value);
    }
    if (type === "message") {
      chat.text += value;
      answer.append(value);
    }
  },
  end(chat, type, value) {
    if (type === "done") showMeta(chat, `${value.tokens} tokens`); // the metadata the server set
    if (type === "cancelled") showMeta(chat, STOPPED[value.reason] ?? "Stopped");
  },
  onState: (state) => steering.setActive(["streaming", "reconnecting"].includes(state)),
});
