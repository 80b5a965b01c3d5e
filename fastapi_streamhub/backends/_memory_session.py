"""One session of the memory backend, and the rules that end and settle a generation:
its finish hook, compaction, readers seen, abandonment. Kept as the Redis scripts
have them (`lua/hook.lua`, `compact.lua`, `seen.lua`, `abandon.lua`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._events import Status, StreamEvent
from ._base import CompactOutcome, HookState, HookTake, InboxEntry
from ._packing import Entry, TextRun, pack


def now_ms() -> int:
    """The wall clock in ms: what the Redis scripts read from `TIME`."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Hook:
    """A generation's finish hook: who holds it, and until when (ms)."""

    name: str
    state: HookState = "owed"
    holder: str = ""
    until_ms: int = 0


@dataclass(slots=True)
class Session:
    generation: str
    owner: str
    lease_until: float
    expires_at: float
    retention_ms: int
    started_ms: int
    status: Status = "active"
    metadata: str = "{}"
    adopter: str | None = None
    """`?` while a pending generation waits for a worker; then its adoption's token."""
    events: list[StreamEvent] = field(default_factory=list)
    packed: list[Entry] | None = None
    ended_ms: int | None = None
    hook: Hook | None = None
    seen_until_ms: int | None = None
    inbox: list[InboxEntry] = field(default_factory=list)
    """Messages posted to this generation (`_memory_inbox.py`)."""
    posted: int = 0

    @property
    def last_seq(self) -> int:
        return len(self.events) if self.packed is None else self.packed[-1].last

    @property
    def data_bytes(self) -> int:
        """What the session holds: its events' data (packed or not) and its metadata."""
        held = sum(len(event.data.encode()) for event in self.events)
        for entry in self.packed or ():
            if isinstance(entry, TextRun):
                held += len(entry.text.encode()) + entry.ends.itemsize * len(entry.ends)
            else:
                held += sum(len(data.encode()) for _, data in entry.events)
        return held + len(self.metadata.encode())

    @property
    def owes_hook(self) -> bool:
        return self.hook is not None and self.hook.state != "done"

    def end(self, status: Status) -> None:
        """The terminal event is stored: keep the session for the retention of its claim."""
        self.status = status
        self.ended_ms = now_ms()
        self.expires_at = time.monotonic() + self.retention_ms / 1000

    def compact(self, chunk: int) -> CompactOutcome:
        if self.status == "active":
            return "skipped"
        if self.packed is None:
            self.packed = pack(self.events, chunk=chunk)
            self.events = []
        return "done"

    def take_hook(self, holder: str, hold_ms: int, grace_ms: int) -> HookTake:
        hook, now = self.hook, now_ms()
        if hook is None or self.status == "active":
            return "none"
        if hook.state == "done":
            return "done"
        if hook.state == "owed":
            free = now >= (self.ended_ms or 0) + grace_ms
        else:
            free = hook.holder == holder or hook.until_ms <= now
        if not free:
            return "busy"
        hook.state, hook.holder, hook.until_ms = "running", holder, now + hold_ms
        return "taken"

    def mark_read(self, hold_ms: int) -> None:
        if self.status == "active":
            self.seen_until_ms = max(self.seen_until_ms or 0, now_ms() + hold_ms)

    def unread_for(self, window_ms: int) -> bool:
        """No reader was seen for `window_ms` (from the start, until one is marked)."""
        seen = self.seen_until_ms if self.seen_until_ms is not None else self.started_ms
        return self.status == "active" and now_ms() > seen + window_ms
