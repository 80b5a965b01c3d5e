"""Which received events are new: the client's own cursor, checked against every event id.

The hub never sends a duplicate or a gap, but a client that keeps its cursor across
reconnections stays exact whatever the network or a proxy does: an event is taken only
if it is the next one of the generation being read. Only a text event may skip seqs:
from a compacted generation, it stands for a run of tokens and carries the seq of the
last one.
"""

from __future__ import annotations

from typing import Literal

from httpx_sse import ServerSentEvent

from .._cursor import Cursor
from .._errors import InvalidCursorError
from .._events import StreamEvent
from ._errors import StreamClientError

Verdict = Literal["new", "duplicate", "gap", "unstored_end"]
"""`new`: yield it. `duplicate`: already yielded, skip. `gap`: reconnect from the cursor.
`unstored_end`: an `error` the hub could not store, which repeats the last id: yield, end."""


class EventTracker:
    """The generation being read and the seq of the last event yielded from it."""

    def __init__(self, last_event_id: str | None) -> None:
        cursor = None if last_event_id is None else Cursor.parse(last_event_id)
        self.generation = None if cursor is None else cursor.generation
        self.seq = 0 if cursor is None else cursor.seq

    @property
    def cursor(self) -> str | None:
        """What to send as `Last-Event-ID`; None before the first event."""
        return None if self.generation is None else f"{self.generation}:{self.seq}"

    def judge(self, sse: ServerSentEvent) -> tuple[Verdict, StreamEvent]:
        """Classify one event with data; a `new` one advances the cursor."""
        cursor = _parse_id(sse.id)
        name = None if sse.event == "message" else sse.event
        event = StreamEvent(cursor.generation, cursor.seq, name, sse.data)
        if name == "reset":
            self.generation, self.seq = cursor.generation, 0
            return "new", event
        same = self.generation in (None, cursor.generation)
        merged = name is None and sse.data.startswith('"') and cursor.seq > self.seq
        if same and (cursor.seq == self.seq + 1 or merged):
            self.generation, self.seq = cursor.generation, cursor.seq
            return "new", event
        if same and cursor.seq <= self.seq:
            return ("unstored_end" if name == "error" else "duplicate"), event
        return "gap", event


def _parse_id(text: str) -> Cursor:
    try:
        return Cursor.parse(text)
    except InvalidCursorError:
        raise StreamClientError(
            f"the server sent an event with id {text[:100]!r}, not '<generation>:<seq>': "
            "is this a fastapi-streamhub route?"
        ) from None
