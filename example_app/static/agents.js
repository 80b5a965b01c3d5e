// The agent mode's page: one transcript written by several sources, and never losing its place.
//
// The first source's events (the planner's) arrive as plain SSE events; every other source's as
// the event `source`, whose data names it: {"source": "search", "event": ..., "data": ...}. The
// page groups consecutive parts of one source into a turn labelled with the source's name and
// colour, in the order the server sent them, which is the one order the hub stored. As on the
// chat page (chat-core.js does it for both), what it rendered is saved with the cursor of the
// last event, and a reload or a dropped connection resumes from that cursor, so the transcript
// is the same as if nothing had happened: same turns, same order, same attribution.

import { TERMINAL, startChatPage } from "./chat-core.js";

const SOURCES = {
  main: { label: "Planner", color: "#2563eb" },
  search: { label: "Search", color: "#059669" },
  calculator: { label: "Calculator", color: "#c2410c" },
};

const transcript = document.getElementById("transcript");
const legend = document.getElementById("sources");

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

function renderLegend(sources) {
  legend.replaceChildren(
    ...Object.entries(sources).map(([source, status]) => {
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

// ---- events ---------------------------------------------------------------------------------

/** The turn that `source`'s next part goes into: the last one if it is that source's. */
function turnOf(chat, source) {
  const last = chat.turns.at(-1);
  if (last?.source === source) return { turn: last, element: transcript.lastElementChild };
  const turn = { source, text: "", results: [] };
  chat.turns.push(turn);
  const element = turnElement(turn);
  transcript.append(element);
  return { turn, element };
}

function sourceSeen(chat, source, status = "running") {
  const known = chat.sources[source];
  if (known === undefined || (status !== "running" && known !== status)) {
    chat.sources[source] = status;
    renderLegend(chat.sources);
  }
}

function addPart(chat, source, event, value) {
  sourceSeen(chat, source);
  const { turn, element } = turnOf(chat, source);
  if (event === undefined || event === null) turn.text += typeof value === "string" ? value : "";
  else turn.results.push(`${event}: ${JSON.stringify(value)}`);
  renderTurn(element, turn);
}

function sourceEnded(chat, source, event, value) {
  const how = { done: "done", cancelled: "stopped" }[event];
  sourceSeen(chat, source, how ?? (value.reason === "producer_lost" ? "lost" : "failed"));
}

startChatPage({
  storageKey: "streamhub-demo:agents",
  api: "/agents",
  home: "/agents",
  live: transcript,
  blank: () => ({ turns: [], sources: {} }),
  render(chat) {
    transcript.replaceChildren(...chat.turns.map(turnElement));
    renderLegend(chat.sources);
  },
  begin(chat) {
    chat.turns = [];
    chat.sources = {};
    transcript.replaceChildren();
    renderLegend(chat.sources);
  },
  apply(chat, type, value) {
    if (type === "message") addPart(chat, "main", null, value);
    else if (type === "source") {
      const { source, event, data } = value;
      if (TERMINAL.has(event)) sourceEnded(chat, source, event, data);
      else if (event === "joined") sourceSeen(chat, source, "joined");
      else addPart(chat, source, event, data);
    } else addPart(chat, "main", type, value);
  },
});
