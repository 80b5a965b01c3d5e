"""In-process backend: the embedded default, for development and single-process apps.

It keeps the Redis backend's semantics (generations, leases, retention, fencing)
so that code moved from one to the other behaves the same. Every method runs
without awaiting in between, which makes each one atomic on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import anyio

from .._events import TERMINAL_EVENTS, StreamEvent
from . import _memory_inbox
from ._base import (
    AdoptOutcome,
    Append,
    AppendOutcome,
    ChannelKind,
    CompactOutcome,
    Control,
    EventBatch,
    Gap,
    HookTake,
    InboxEntry,
    InboxRead,
    Lease,
    NotificationHandler,
    Page,
    Posted,
    PostOutcome,
    ResyncHandler,
    SessionDetails,
    SessionState,
    Unread,
    WriteOutcome,
)
from ._memory_session import Hook, Session, now_ms
from ._packing import read_packed

_SWEEP_EVERY = 256


def _within(events: list[StreamEvent], max_bytes: int) -> list[StreamEvent]:
    """The first events whose data fits `max_bytes` (at least one)."""
    size = 0
    for index, event in enumerate(events):
        size += len(event.data.encode())
        if size > max_bytes and index > 0:
            return events[:index]
    return events


_WAITING = "?"


class MemoryBackend:
    """Sessions in a dict; notifications are calls on the same event loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._watched: dict[ChannelKind, set[str]] = {"events": set(), "control": set()}
        self._notify: NotificationHandler | None = None
        self._claims = 0
        self._hook_index: dict[str, int] = {}

    async def open(self, on_notification: NotificationHandler, on_resync: ResyncHandler) -> None:
        self._notify = on_notification

    async def run(self) -> None:
        await anyio.sleep_forever()

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._notify = None

    async def watch(self, key: str, kind: ChannelKind) -> None:
        self._watched[kind].add(key)

    async def unwatch(self, key: str, kind: ChannelKind) -> None:
        self._watched[kind].discard(key)

    def _live(self, key: str) -> Session | None:
        session = self._sessions.get(key)
        if session is not None and session.expires_at <= time.monotonic():
            del self._sessions[key]
            return None
        return session

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]

    def _state(self, key: str, session: Session) -> SessionState:
        return SessionState(
            key=key,
            status=session.status,
            generation=session.generation,
            owner=session.owner,
            last_seq=session.last_seq,
            metadata=session.metadata,
            lease_expired=session.lease_until <= time.monotonic(),
            pending=session.adopter == _WAITING and session.status == "active",
        )

    async def claim(
        self,
        key: str,
        *,
        generation: str,
        owner: str,
        lease_ms: int,
        retention_ms: int,
        pending: bool = False,
        hook: str = "",
    ) -> tuple[bool, SessionState]:
        self._claims += 1
        if self._claims % _SWEEP_EVERY == 0:
            self._sweep()
        now = time.monotonic()
        session = self._live(key)
        if session is not None and (
            (session.status == "active" and session.lease_until > now) or session.owes_hook
        ):
            return False, self._state(key, session)
        session = Session(
            generation=generation,
            owner=owner,
            lease_until=now + lease_ms / 1000,
            expires_at=now + retention_ms / 1000,
            retention_ms=retention_ms,
            started_ms=now_ms(),
            hook=Hook(hook) if hook else None,
            adopter=_WAITING if pending else None,
        )
        self._sessions[key] = session
        return True, self._state(key, session)

    async def adopt(
        self, key: str, *, generation: str, owner: str, token: str, lease_ms: int, retention_ms: int
    ) -> AdoptOutcome:
        session = self._live(key)
        if session is None or session.generation != generation:
            return "stale"
        if session.status != "active":
            return session.status
        if session.adopter == token:
            return "ok"
        if session.adopter != _WAITING:
            return "adopted"
        now = time.monotonic()
        if session.lease_until <= now:
            return "expired"
        session.adopter = token
        session.owner = owner
        session.lease_until = now + lease_ms / 1000
        session.expires_at = now + retention_ms / 1000
        return "ok"

    def _writable(self, key: str, generation: str) -> tuple[Session | None, WriteOutcome]:
        session = self._live(key)
        if session is None or session.generation != generation:
            return None, "stale"
        if session.status != "active":
            return None, session.status
        return session, "ok"

    async def append_many(
        self, writes: Sequence[Append], *, retention_ms: int
    ) -> list[AppendOutcome]:
        return [self._append(write, retention_ms) for write in writes]

    def _append(self, write: Append, retention_ms: int) -> AppendOutcome:
        key, events, metadata = write.key, write.events, write.metadata
        session, outcome = self._writable(key, write.generation)
        if session is None:
            return outcome
        last = session.last_seq
        fresh = (
            events if not events or events[0].seq > last else [e for e in events if e.seq > last]
        )
        if fresh and fresh[0].seq != session.last_seq + 1:
            return Gap(session.last_seq)
        session.events.extend(fresh)
        if metadata is not None:
            session.metadata = metadata
        if fresh and fresh[-1].event in TERMINAL_EVENTS:
            session.end(fresh[-1].event)  # type: ignore[arg-type]
        if fresh:
            self._deliver(key, "events", EventBatch(fresh))
        return "ok"

    async def refresh_many(
        self, leases: Sequence[Lease], *, lease_ms: int, retention_ms: int
    ) -> list[WriteOutcome]:
        return [self._refresh(lease, lease_ms, retention_ms) for lease in leases]

    def _refresh(self, lease: Lease, lease_ms: int, retention_ms: int) -> WriteOutcome:
        session, outcome = self._writable(lease.key, lease.generation)
        if session is None:
            return outcome
        now = time.monotonic()
        session.lease_until = now + lease_ms / 1000
        session.expires_at = now + retention_ms / 1000
        return "ok"

    async def finish(
        self,
        key: str,
        *,
        generation: str | None,
        event: Literal["cancelled", "error"],
        data: str,
        retention_ms: int,
        only_if_lapsed: bool,
    ) -> tuple[bool, SessionState | None]:
        session = self._live(key)
        if session is None:
            return False, None
        now = time.monotonic()
        if (
            (generation is not None and session.generation != generation)
            or session.status != "active"
            or (only_if_lapsed and session.lease_until > now)
        ):
            return False, self._state(key, session)
        terminal = StreamEvent(session.generation, session.last_seq + 1, event, data)
        session.events.append(terminal)
        session.end(event)
        self._deliver(key, "events", EventBatch([terminal]))
        if event == "cancelled":
            self._deliver(key, "control", Control("cancel", session.generation))
        return True, self._state(key, session)

    async def release(self, key: str, *, generation: str) -> None:
        session = self._live(key)
        if session is not None and session.generation == generation:
            session.owner = ""
            session.lease_until = 0.0
        self._deliver(key, "control", Control("stopped", generation))

    async def read(
        self,
        key: str,
        *,
        generation: str,
        after_seq: int,
        limit: int,
        max_bytes: int | None = None,
    ) -> Page | None:
        session = self._live(key)
        if session is None or session.generation != generation:
            return None
        if session.packed is not None:
            events = read_packed(session.packed, generation, after=after_seq, limit=limit)
        else:
            events = session.events[after_seq : after_seq + limit]
        if max_bytes is not None:
            events = _within(events, max_bytes)
        return Page(events, session.last_seq, session.status != "active")

    async def states(self, keys: Sequence[str]) -> list[SessionState | None]:
        result: list[SessionState | None] = []
        for key in keys:
            session = self._live(key)
            result.append(None if session is None else self._state(key, session))
        return result

    async def remove(self, key: str) -> bool:
        return self._sessions.pop(key, None) is not None

    async def session_bytes(self, keys: Sequence[str]) -> list[int | None]:
        sessions = [self._live(key) for key in keys]
        return [None if session is None else session.data_bytes for session in sessions]

    async def session_keys(self, *, limit: int) -> list[str]:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit!r}")
        self._sweep()
        return list(self._sessions)[:limit]

    async def details(self, key: str) -> SessionDetails | None:
        session = self._live(key)
        if session is None:
            return None
        hook = session.hook
        return SessionDetails(
            state=self._state(key, session),
            started_ms=session.started_ms,
            ended_ms=session.ended_ms,
            hook="none" if hook is None else hook.state,
            hook_name="" if hook is None else hook.name,
            compacted=session.packed is not None,
        )

    async def compact(self, key: str, *, generation: str, chunk: int) -> CompactOutcome:
        session = self._live(key)
        if session is None or session.generation != generation:
            return "skipped"
        return session.compact(chunk)

    async def take_hook(
        self, key: str, *, generation: str, holder: str, hold_ms: int, grace_ms: int
    ) -> HookTake:
        session = self._live(key)
        if session is None or session.generation != generation:
            return "none"
        return session.take_hook(holder, hold_ms, grace_ms)

    async def hook_done(self, key: str, *, generation: str) -> None:
        session = self._live(key)
        if session is not None and session.generation == generation and session.hook:
            session.hook.state = "done"

    async def owe_hooks(self, keys: Sequence[str], *, delay_ms: int) -> str:
        due = now_ms() + delay_ms
        for key in keys:
            self._hook_index[key] = due
        return str(due)

    async def due_hooks(self, *, limit: int) -> list[tuple[str, str]]:
        now = now_ms()
        due = sorted((mark, key) for key, mark in self._hook_index.items() if mark <= now)
        return [(key, str(mark)) for mark, key in due[:limit]]

    async def drop_hooks(self, entries: Sequence[tuple[str, str]]) -> None:
        for key, mark in entries:
            if str(self._hook_index.get(key)) == mark:
                del self._hook_index[key]

    async def mark_read(self, keys: Sequence[str], *, hold_ms: int) -> None:
        for key in keys:
            session = self._live(key)
            if session is not None:
                session.mark_read(hold_ms)

    async def abandon_unread(
        self, generations: Sequence[Unread], *, data: str, retention_ms: int
    ) -> list[bool]:
        ended = []
        for item in generations:
            session = self._live(item.key)
            unread = (
                session is not None
                and session.generation == item.generation
                and session.unread_for(item.window_ms)
            )
            if unread:
                await self.finish(
                    item.key,
                    generation=item.generation,
                    event="cancelled",
                    data=data,
                    retention_ms=retention_ms,
                    only_if_lapsed=False,
                )
            ended.append(unread)
        return ended

    async def post(
        self, key: str, *, kind: str, payload: str, source: str, max_entries: int
    ) -> PostOutcome:
        session = self._live(key)
        outcome = _memory_inbox.post(
            session, kind=kind, payload=payload, source=source, max_entries=max_entries
        )
        if isinstance(outcome, Posted):
            self._deliver(key, "control", Control("inbox", outcome.generation))
        return outcome

    async def take(
        self, reads: Sequence[InboxRead], *, limit: int
    ) -> list[list[InboxEntry] | None]:
        return [_memory_inbox.take(self._live(read.key), read, limit) for read in reads]

    def _deliver(self, key: str, kind: ChannelKind, note: EventBatch | Control) -> None:
        if self._notify is not None and key in self._watched[kind]:
            self._notify(key, note)
