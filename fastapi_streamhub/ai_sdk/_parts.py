"""From the library's events to the parts of the AI SDK's UI message stream.

A `PartWriter` reads one generation's events in order from seq 1 and says, for each,
which parts it becomes. It keeps only what the mapping needs (whether the message has
started, which text or reasoning block is open, how many blocks so far), so every replay
from seq 1 gives the same parts with the same ids: what `useChat` needs to rebuild a
message from its `start`.

| event                           | parts                                                   |
| ------------------------------- | ------------------------------------------------------- |
| the first one (seq 1)           | `start` (with the message id), `start-step`             |
| `message_start`                 | only the above: it carries the message id               |
| text (a `str` chunk)            | `text-start` when no text block is open, `text-delta`   |
| `reasoning`                     | `reasoning-start` when none is open, `reasoning-delta`  |
| `tool_call_start`               | `tool-input-start`                                      |
| `tool_call_delta`               | `tool-input-delta`                                      |
| `tool_call`                     | `tool-input-available`                                  |
| `tool_result`, `tool_error`     | `tool-output-available`, `tool-output-error`            |
| `step`                          | `finish-step`, `start-step`                             |
| `data-<name>`                   | `data-<name>`                                           |
| `steer` (a steering message)    | `data-steer`, its data the `steer` event's              |
| `message_metadata`              | `message-metadata`                                      |
| `done`                          | `finish-step`, `finish` (reason and metadata)           |
| `error`                         | `error`                                                 |
| `cancelled`                     | `abort`                                                 |

Any other event, and any chunk that is not text, becomes no part. Every event but text,
reasoning and `message_metadata` first closes the open block (`text-end`,
`reasoning-end`), so the message's parts keep the order of the events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .._events import StreamEvent
from .._logs import about

logger = logging.getLogger("fastapi_streamhub")

Part = dict[str, Any]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
    "tool-calls": "tool-calls",
    "content-filter": "content-filter",
    "error": "error",
    "other": "other",
}
"""`finish_reason` as the model says it (Chat Completions' words, or the SDK's own) to the
SDK's `finishReason`. These values are valid in AI SDK 5, 6 and 7; anything else is
`other`, and no reason at all is `stop`."""


class _Malformed(ValueError):
    """An event of the vocabulary whose data lacks a field its part needs."""


def _field(value: Any, name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get(name), str):
        raise _Malformed(f"needs a string {name!r}")
    text: str = value[name]
    return text


class PartWriter:
    """The UI message stream parts of one generation's events, fed in order from seq 1."""

    def __init__(self, key: str) -> None:
        self._key = key
        """The stream key, for the log."""
        self._started = False
        self._open: tuple[str, str] | None = None
        self._blocks = 0

    def _reset(self) -> None:
        self._started, self._open, self._blocks = False, None, 0

    def parts(self, event: StreamEvent) -> list[Part]:
        """The parts `event` becomes; a `reset` starts the next generation afresh."""
        if event.event == "reset":
            self._reset()
            return []
        value = event.value
        parts = self._start(event, value) if not self._started and event.seq > 0 else []
        if event.event == "message_start":
            return parts
        try:
            return parts + self._translate(event.event, value)
        except _Malformed as exc:
            logger.warning(
                "stream %r (generation %s): event %s (%s) is not sent to the AI SDK: %s",
                self._key,
                event.generation,
                event.id,
                event.event,
                exc,
                extra=about(self._key, event.generation),
            )
            return parts

    def _start(self, event: StreamEvent, value: Any) -> list[Part]:
        self._started = True
        message_id = event.generation
        if event.event == "message_start" and isinstance(value, dict):
            message_id = value.get("message_id") or message_id
        return [{"type": "start", "messageId": str(message_id)}, {"type": "start-step"}]

    def _translate(self, name: str | None, value: Any) -> list[Part]:
        if name is None:
            return self._block("text", value) if isinstance(value, str) else []
        if name.startswith("data-"):
            return [*self._close(), {"type": name, "data": value}]
        translate = _EVENTS.get(name)
        return [] if translate is None else translate(self, value)

    def _close(self) -> list[Part]:
        if self._open is None:
            return []
        kind, block = self._open
        self._open = None
        return [{"type": f"{kind}-end", "id": block}]

    def _block(self, kind: str, delta: Any) -> list[Part]:
        if not isinstance(delta, str):
            raise _Malformed("needs text")
        parts: list[Part] = []
        if self._open is None or self._open[0] != kind:
            parts = self._close()
            self._blocks += 1
            self._open = (kind, f"{kind}-{self._blocks}")
            parts.append({"type": f"{kind}-start", "id": self._open[1]})
        parts.append({"type": f"{kind}-delta", "id": self._open[1], "delta": delta})
        return parts

    def _reasoning(self, value: Any) -> list[Part]:
        return self._block("reasoning", value)

    def _tool_call_start(self, value: Any) -> list[Part]:
        part = {"toolCallId": _field(value, "id"), "toolName": _field(value, "name")}
        return [*self._close(), {"type": "tool-input-start", **part}]

    def _tool_call_delta(self, value: Any) -> list[Part]:
        part = {"toolCallId": _field(value, "id"), "inputTextDelta": _field(value, "delta")}
        return [*self._close(), {"type": "tool-input-delta", **part}]

    def _tool_call(self, value: Any) -> list[Part]:
        part = {
            "toolCallId": _field(value, "id"),
            "toolName": _field(value, "name"),
            "input": value.get("arguments"),
        }
        return [*self._close(), {"type": "tool-input-available", **part}]

    def _tool_result(self, value: Any) -> list[Part]:
        part = {"toolCallId": _field(value, "id"), "output": value.get("output")}
        return [*self._close(), {"type": "tool-output-available", **part}]

    def _tool_error(self, value: Any) -> list[Part]:
        part = {"toolCallId": _field(value, "id"), "errorText": _field(value, "error")}
        return [*self._close(), {"type": "tool-output-error", **part}]

    def _step(self, value: Any) -> list[Part]:
        return [*self._close(), {"type": "finish-step"}, {"type": "start-step"}]

    def _steer(self, value: Any) -> list[Part]:
        return [*self._close(), {"type": "data-steer", "data": value}]

    def _message_metadata(self, value: Any) -> list[Part]:
        return [{"type": "message-metadata", "messageMetadata": value}]

    def _done(self, value: Any) -> list[Part]:
        metadata = dict(value) if isinstance(value, dict) else {}
        reason = metadata.pop("finish_reason", None)
        finish: Part = {"type": "finish", "finishReason": _finish_reason(reason)}
        if metadata:
            finish["messageMetadata"] = metadata
        return [*self._close(), {"type": "finish-step"}, finish]

    def _error(self, value: Any) -> list[Part]:
        message = value.get("message") if isinstance(value, dict) else None
        return [{"type": "error", "errorText": message or "The stream failed."}]

    def _cancelled(self, value: Any) -> list[Part]:
        return [{"type": "abort"}]


def _finish_reason(reason: object) -> str:
    if not isinstance(reason, str):
        return "stop"
    return FINISH_REASONS.get(reason, "other")


_EVENTS: dict[str, Callable[[PartWriter, Any], list[Part]]] = {
    "reasoning": PartWriter._reasoning,
    "tool_call_start": PartWriter._tool_call_start,
    "tool_call_delta": PartWriter._tool_call_delta,
    "tool_call": PartWriter._tool_call,
    "tool_result": PartWriter._tool_result,
    "tool_error": PartWriter._tool_error,
    "step": PartWriter._step,
    "steer": PartWriter._steer,
    "message_metadata": PartWriter._message_metadata,
    "done": PartWriter._done,
    "error": PartWriter._error,
    "cancelled": PartWriter._cancelled,
}


def encode_parts(event: StreamEvent, parts: list[Part]) -> str:
    """The SSE text of `parts`; the last one carries `event`'s id as the SSE `id`, so a
    client that tracks ids has a cursor that covers every part of the events it saw."""
    if not parts:
        return ""
    *first, last = parts
    lines = [part_line(part) for part in first]
    lines.append(f"id: {event.generation}:{event.seq}\n{part_line(last)}")
    return "".join(lines)


def part_line(part: Part) -> str:
    """One part as an SSE event without an id."""
    return f"data: {_dumps(part)}\n\n"
