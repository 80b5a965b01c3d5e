"""The result of a generation: the answer assembled from its stored events.

Text chunks (unnamed events whose data is a JSON string) make up `text`; every other
event but the terminal one is kept in `events`, in order, with its seq; the terminal
event says how it ended. It reads the same before and after compaction, and a read
that spans the compaction pages on by seq like any reader, so nothing is lost or
counted twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from ._events import MAIN_SOURCE, SOURCE_EVENT, StreamEvent
from .backends._base import Backend, SessionDetails

ResultStatus = Literal["running", "done", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """An event of a generation that is not answer text: a named event (a tool call, a
    prompt), or a chunk that is not a string (`event` None)."""

    seq: int
    event: str | None
    data: Any

    @property
    def source(self) -> str:
        """The source that wrote it: `"main"`, or the name a `source` event's data gives."""
        if self.event == SOURCE_EVENT and isinstance(self.data, dict):
            return str(self.data.get("source", MAIN_SOURCE))
        return MAIN_SOURCE


@dataclass(frozen=True, slots=True)
class StreamResult:
    """A generation's answer as storage holds it: complete once it has ended, what
    exists so far while it runs.

    Attributes:
        key: the stream key.
        generation: the generation id: the same for every call about one run, so an
            app can store it idempotently.
        status: `running`, `done`, `error` or `cancelled`.
        text: every text chunk, concatenated.
        events: the other events, in order (the terminal event excluded).
        metadata: what the generator set (`set_metadata`), usage for example.
        started_at: when the generation was claimed (storage's clock).
        ended_at: when its terminal event was stored; None while it runs.
        end: the terminal event's data (`{"message": ..., "reason": ...}` for `error`,
            `{"reason": ...}` for `cancelled`); None while it runs.
        last_event_id: the id of the last stored event: the cursor to resume after.
    """

    key: str
    generation: str
    status: ResultStatus
    text: str
    events: tuple[ResultEvent, ...]
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    end: dict[str, Any] | None
    last_event_id: str

    @property
    def usage(self) -> Any:
        """`metadata["usage"]`, if the generator set it."""
        return self.metadata.get("usage")

    @property
    def last_seq(self) -> int:
        return int(self.last_event_id.rpartition(":")[2])


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(slots=True)
class _Assembly:
    text: list[str] = field(default_factory=list)
    events: list[ResultEvent] = field(default_factory=list)
    terminal: StreamEvent | None = None
    last_seq: int = 0

    def add(self, event: StreamEvent) -> None:
        self.last_seq = event.seq
        if event.terminal:
            self.terminal = event
            return
        value = event.value
        if event.event is None and isinstance(value, str):
            self.text.append(value)
        else:
            self.events.append(ResultEvent(event.seq, event.event, value))


async def read_result(
    backend: Backend, key: str, generation: str | None, *, page_size: int
) -> StreamResult | None:
    """The result of `generation` (the current one if None); None if storage holds no
    such generation, or it was replaced while being read."""
    details = await backend.details(key)
    if details is None or generation not in (None, details.state.generation):
        return None
    current = details.state.generation
    assembly = _Assembly()
    while True:
        page = await backend.read(
            key, generation=current, after_seq=assembly.last_seq, limit=page_size
        )
        if page is None:
            return None
        for event in page.events:
            assembly.add(event)
        if not page.events or page.events[-1].seq >= page.last_seq:
            break
    if assembly.terminal is not None and details.ended_ms is None:
        details = await backend.details(key) or details
    return _result(key, details, assembly)


def _result(key: str, details: SessionDetails, assembly: _Assembly) -> StreamResult:
    terminal = assembly.terminal
    state = details.state
    return StreamResult(
        key=key,
        generation=state.generation,
        status="running" if terminal is None else cast("ResultStatus", terminal.event),
        text="".join(assembly.text),
        events=tuple(assembly.events),
        metadata=json.loads(state.metadata),
        started_at=datetime.fromtimestamp(details.started_ms / 1000, UTC),
        ended_at=None if terminal is None else _time(details.ended_ms),
        end=None if terminal is None else terminal.value,
        last_event_id=f"{state.generation}:{assembly.last_seq}",
    )
