"""What storage holds, read for an operator: one row per session, and the figures of all.

Built on the backend contract (`session_keys`, `details`, `read`), so it reads the same
on Redis, a Redis Cluster and Sentinel. Listing walks the keyspace and reads each
session's state: a few milliseconds per hundred sessions, meant for a shell, never for
a request's path.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio

from .._status import stream_status
from ..backends._base import Backend, SessionDetails
from ._sources import SourceState, source_counts, source_states

Shown = Literal["running", "pending", "lapsed", "done", "error", "cancelled"]
"""A session's status as the command line shows it: `active` is split into `running`
(its producer holds its lease), `pending` (handed to a job queue, no worker has started
it) and `lapsed` (its producer's lease ran out: the producer is gone, and the stream
ends as `producer_lost` once an instance notices)."""

SHOWN_ORDER: tuple[Shown, ...] = ("running", "pending", "lapsed", "done", "error", "cancelled")

_DETAILS_AT_ONCE = 32


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session: what `ls` lists and `status` shows."""

    key: str
    generation: str
    status: Shown
    sources: int | None
    """How many sources its generation has had (None: not counted, see `with_sources`)."""
    events: int
    started_at: datetime
    ended_at: datetime | None
    owner: str
    compacted: bool
    finish_hook: str
    metadata: dict[str, Any]
    bytes: int | None = None
    """What storage holds for it (`session_bytes`), if read."""
    end: dict[str, Any] | None = None
    """The terminal event's data (`status` only): why it ended."""
    source_states: tuple[SourceState, ...] | None = None
    """Each source and its state (`status` only)."""

    @property
    def last_event_id(self) -> str:
        return f"{self.generation}:{self.events}"

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.started_at.timestamp())

    def as_json(self, now: float, *, with_end: bool = False) -> dict[str, Any]:
        """As JSON-ready data; `with_end` adds `end` (read by `session_row` only)."""
        data = {
            "key": self.key,
            "generation": self.generation,
            "status": self.status,
            "sources": self.sources,
            "events": self.events,
            "bytes": self.bytes,
            "last_event_id": self.last_event_id,
            "started_at": _iso(self.started_at),
            "ended_at": None if self.ended_at is None else _iso(self.ended_at),
            "age_s": round(self.age_s(now), 3),
            "owner": self.owner or None,
            "compacted": self.compacted,
            "finish_hook": self.finish_hook,
            "metadata": self.metadata,
        }
        if not with_end:
            return data
        states = None if self.source_states is None else [s.as_json() for s in self.source_states]
        return {**data, "end": self.end, "source_states": states}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def row_of(details: SessionDetails) -> SessionRow:
    status = stream_status(details.state)
    shown: Shown
    if status.status != "active":
        shown = status.status
    elif status.pending:
        shown = "pending"
    else:
        shown = "running" if status.producer_running else "lapsed"
    return SessionRow(
        key=status.key,
        generation=status.generation,
        status=shown,
        sources=None,
        events=status.last_seq,
        started_at=_time(details.started_ms),
        ended_at=None if details.ended_ms is None else _time(details.ended_ms),
        owner="" if status.pending else details.state.owner,
        compacted=details.compacted,
        finish_hook=details.hook,
        metadata=status.metadata,
    )


async def session_row(backend: Backend, key: str) -> SessionRow | None:
    """The session of `key` with its end (the terminal event's data); None if none."""
    details = await backend.details(key)
    if details is None:
        return None
    (size,) = await backend.session_bytes([key])
    row = dataclasses.replace(row_of(details), bytes=size)
    states = await source_states(backend, key, row.generation, row.events)
    if states is not None:
        row = dataclasses.replace(row, sources=len(states), source_states=tuple(states))
    if row.status in ("done", "error", "cancelled") and row.events:
        page = await backend.read(key, generation=row.generation, after_seq=row.events - 1, limit=1)
        if page is not None and page.events and page.events[-1].terminal:
            end = page.events[-1].value
            row = dataclasses.replace(row, end=end if isinstance(end, dict) else None)
    return row


async def session_rows(backend: Backend, *, scan_limit: int) -> list[SessionRow]:
    """Every session storage holds (up to `scan_limit`): running ones first, then the
    most recently started."""
    keys = await backend.session_keys(limit=scan_limit)
    found: dict[str, SessionDetails] = {}
    limiter = anyio.CapacityLimiter(_DETAILS_AT_ONCE)

    async def read_one(key: str) -> None:
        async with limiter:
            details = await backend.details(key)
        if details is not None:  # it expired or was removed since the scan
            found[key] = details

    async with anyio.create_task_group() as group:
        for key in keys:
            group.start_soon(read_one, key)
    sizes = await backend.session_bytes(list(found))
    rows = [
        dataclasses.replace(row_of(details), bytes=size)
        for details, size in zip(found.values(), sizes, strict=True)
    ]
    rows.sort(key=lambda row: (SHOWN_ORDER.index(row.status) > 2, -row.started_at.timestamp()))
    return rows


async def with_sources(backend: Backend, rows: list[SessionRow]) -> list[SessionRow]:
    """`rows` with their sources counted: each generation's events are read (see
    `_sources.py`), so only the rows to be shown are given."""
    counts = await source_counts(backend, [(r.key, r.generation, r.events) for r in rows])
    return [dataclasses.replace(row, sources=n) for row, n in zip(rows, counts, strict=True)]


@dataclass(frozen=True, slots=True)
class Stats:
    """What `stats` reports: figures over every session storage holds."""

    streams: int
    by_status: dict[str, int]
    events: int
    bytes: int
    compacted: int
    finish_hooks_owed: int
    instances: dict[str, int] = field(default_factory=dict)
    """Running producers per owner instance."""
    oldest_running_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "by_status": self.by_status,
            "events": self.events,
            "bytes": self.bytes,
            "compacted": self.compacted,
            "finish_hooks_owed": self.finish_hooks_owed,
            "instances": self.instances,
            "oldest_running_s": self.oldest_running_s,
        }


def stats_of(rows: list[SessionRow]) -> Stats:
    now = time.time()
    counts = Counter(row.status for row in rows)
    running = [row for row in rows if row.status == "running"]
    return Stats(
        streams=len(rows),
        by_status={status: counts.get(status, 0) for status in SHOWN_ORDER},
        events=sum(row.events for row in rows),
        bytes=sum(row.bytes or 0 for row in rows),
        compacted=sum(row.compacted for row in rows),
        finish_hooks_owed=sum(row.finish_hook in ("owed", "running") for row in rows),
        instances=dict(Counter(row.owner for row in running)),
        oldest_running_s=round(max(row.age_s(now) for row in running), 3) if running else None,
    )
