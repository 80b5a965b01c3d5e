"""Events as producers yield them and as subscribers receive them.

A stream carries JSON documents: every event's `data` is one JSON text, so any
value a producer yields reaches an SSE client unchanged (raw SSE data cannot
carry a CR). Terminal events end a stream and are stored like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

Status = Literal["active", "done", "error", "cancelled"]

TERMINAL_EVENTS: Final = frozenset({"done", "error", "cancelled"})
SOURCE_EVENT: Final = "source"
"""The event name that carries an event of a source other than the first (`_sources.py`)."""
MAIN_SOURCE: Final = "main"
"""The name of a generation's first source: its events are sent as they always were."""
JOINED_EVENT: Final = "joined"
"""The first event of a source another process joined (inside its envelope)."""
RESERVED_EVENTS: Final = TERMINAL_EVENTS | {"reset", "message", SOURCE_EVENT, JOINED_EVENT}

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class Event:
    """A named event, for output that is not answer text (tool calls, reasoning).

    Args:
        event: the SSE event name; not one of the names the hub reserves.
        data: any JSON-serialisable value.
    """

    event: str
    data: Any = None

    def __post_init__(self) -> None:
        if not self.event or self.event in RESERVED_EVENTS:
            raise ValueError(f"event name {self.event!r} is empty or reserved")
        if any(c in self.event for c in "\r\n\0:") or not self.event.isprintable():
            raise ValueError(f"event name {self.event!r} has characters SSE cannot carry")


class StreamEvent(NamedTuple):
    """One stored event of one generation, as a subscriber receives it.

    `data` is the JSON text exactly as stored; `value` decodes it. A named tuple
    rather than a frozen dataclass: one is created per token, at a third of the cost.
    """

    generation: str
    seq: int
    event: str | None
    data: str

    @property
    def id(self) -> str:
        return f"{self.generation}:{self.seq}"

    @property
    def value(self) -> Any:
        return json.loads(self.data)

    @property
    def terminal(self) -> bool:
        """True for the generation's own end (`done`, `error`, `cancelled`)."""
        return self.event in TERMINAL_EVENTS

    @property
    def source(self) -> str:
        """The source that produced it: `"main"` (the first source) for every event but
        a `source` event, which names its own."""
        if self.event != SOURCE_EVENT:
            return MAIN_SOURCE
        return self.sourced.source

    @property
    def sourced(self) -> Sourced:
        """The event as its source produced it: the `source` envelope unwrapped, or the
        event itself (source `"main"`)."""
        if self.event != SOURCE_EVENT:
            return Sourced(MAIN_SOURCE, self.event, self.value)
        envelope = json.loads(self.data)
        return Sourced(envelope["source"], envelope.get("event"), envelope.get("data"))


class Sourced(NamedTuple):
    """One source's event: `event` is its name (None for a chunk), `value` its data. A
    source's own end is `done`, `error` (`{"message", "reason"}`) or `cancelled`."""

    source: str
    event: str | None
    value: Any

    @property
    def terminal(self) -> bool:
        """True for the end of this source (of the generation, for a plain terminal)."""
        return self.event in TERMINAL_EVENTS


class UnsupportedChunkError(TypeError):
    """A producer yielded something that is not JSON (its type is named for the log)."""


def encode_chunk(chunk: object) -> tuple[str | None, str]:
    """Turn a yielded value into (event name, JSON data)."""
    if isinstance(chunk, str):
        return None, _dumps(chunk)
    if isinstance(chunk, Event):
        return chunk.event, _encode_json(chunk.data)
    return None, _encode_json(chunk)


def _encode_json(value: object) -> str:
    try:
        return _dumps(value)
    except (TypeError, ValueError) as exc:
        raise UnsupportedChunkError(
            f"cannot stream a value of type {type(value).__qualname__}: {exc}"
        ) from None


def terminal_data(**fields: object) -> str:
    """The JSON body of a terminal or control event."""
    return _dumps(fields)


def metadata_json(metadata: dict[str, Any]) -> str:
    return _encode_json(metadata)
