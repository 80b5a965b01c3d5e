"""The sources of a stored generation, read back from its events for an operator.

Storage keeps no list of sources: a generation that fans in says it in its events (the
`source` envelopes of `_sources.py`: each source's events, its `joined`, its own end),
and a generation that never did has one source, the first. So the command line reads
the generation's events once, in pages, and keeps only what the envelopes say; a
compacted generation keeps every named event whole, so its envelopes are all there,
and its text runs make the read shorter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import anyio

from .._events import MAIN_SOURCE, SOURCE_EVENT, StreamEvent
from ..backends._base import Backend

PAGE_EVENTS: Final = 1000
PAGE_BYTES: Final = 1 << 20
_COUNTS_AT_ONCE: Final = 8


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source of a generation: still `running`, or how it `ended` (`end`: `done`,
    `error` or `cancelled`; `reason`: the reason of its end's data, if any). A source
    still running when its generation ended ended with it: its `end` is the generation's."""

    name: str
    end: str | None = None
    reason: str | None = None

    @property
    def state(self) -> str:
        return "running" if self.end is None else "ended"

    @property
    def shown(self) -> str:
        """`running`, `ended (done)`, `ended (error: producer_lost)`."""
        if self.end is None:
            return "running"
        return f"ended ({self.end}: {self.reason})" if self.reason else f"ended ({self.end})"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "end": self.end, "reason": self.reason}


def _reason(value: Any) -> str | None:
    reason = value.get("reason") if isinstance(value, dict) else None
    return reason if isinstance(reason, str) else None


class _Tally:
    """The sources seen so far in a generation's events, in the order they started."""

    def __init__(self) -> None:
        self.found: dict[str, SourceState] = {MAIN_SOURCE: SourceState(MAIN_SOURCE)}

    def see(self, event: StreamEvent) -> None:
        if event.event == SOURCE_EVENT:
            envelope = json.loads(event.data)
            name, end = envelope["source"], envelope.get("event")
            if name not in self.found:
                self.found[name] = SourceState(name)
            if end in ("done", "error", "cancelled"):
                self.found[name] = SourceState(name, end, _reason(envelope.get("data")))
        elif event.terminal:
            reason = _reason(event.value)
            for name, state in self.found.items():
                if state.end is None:
                    self.found[name] = SourceState(name, event.event, reason)


async def source_states(
    backend: Backend, key: str, generation: str, last_seq: int
) -> list[SourceState] | None:
    """The sources of `generation` of `key` as its first `last_seq` events tell them; None
    if the key moved to another generation meanwhile."""
    tally = _Tally()
    after = 0
    while after < last_seq:
        page = await backend.read(
            key, generation=generation, after_seq=after, limit=PAGE_EVENTS, max_bytes=PAGE_BYTES
        )
        if page is None:
            return None
        if not page.events:
            break
        for event in page.events:
            tally.see(event)
        after = page.events[-1].seq
    return list(tally.found.values())


async def source_counts(backend: Backend, rows: list[tuple[str, str, int]]) -> list[int | None]:
    """How many sources each (key, generation, last seq) has had; None where the key moved
    on meanwhile. A few generations are read at once."""
    counts: list[int | None] = [None] * len(rows)
    limiter = anyio.CapacityLimiter(_COUNTS_AT_ONCE)

    async def count(index: int, key: str, generation: str, last_seq: int) -> None:
        async with limiter:
            states = await source_states(backend, key, generation, last_seq)
        counts[index] = None if states is None else len(states)

    async with anyio.create_task_group() as group:
        for index, (key, generation, last_seq) in enumerate(rows):
            group.start_soon(count, index, key, generation, last_seq)
    return counts
