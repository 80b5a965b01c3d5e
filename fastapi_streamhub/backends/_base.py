"""The backend contract: bytes, ids and atomic state changes, nothing of HTTP.

Every write names the generation it belongs to and is refused when that
generation is no longer current: that is how a stale producer is fenced out.
Backends deliver notifications (appended events, control messages) to one
handler per process; the hub fans them out locally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .._events import Status, StreamEvent

WriteOutcome = Literal["ok", "stale", "done", "error", "cancelled", "unavailable", "failed"]
"""`ok`, or why the write was refused: another generation owns the key (`stale`), it has
ended (`done`, `error`, `cancelled`), storage refused it for now and a retry may succeed
(`unavailable`: out of memory, a read-only replica, a failover), or storage refused it
for good (`failed`: a bug, or a key of the wrong type)."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Storage holds fewer events than the write assumes: a failover lost the tail that
    had not reached the replica. `last_seq` is what storage still has."""

    last_seq: int


AppendOutcome = WriteOutcome | Gap

ChannelKind = Literal["events", "control"]

AdoptOutcome = Literal["ok", "adopted", "expired", "stale", "done", "error", "cancelled"]
"""`ok`: the caller now owns the generation a web process claimed for a worker. Or why
not: another worker adopted it (`adopted`), no worker did before its start deadline
(`expired`), the key holds another generation or none (`stale`), or it has ended."""


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session as storage holds it; `lease_expired` is measured on storage's clock."""

    key: str
    status: Status
    generation: str
    owner: str
    last_seq: int
    metadata: str
    lease_expired: bool
    pending: bool = False
    """Claimed for a worker that has not adopted it yet (its lease is the start deadline)."""


HookState = Literal["none", "owed", "running", "done"]
"""A generation's finish hook: none set, owed (not run yet), being run, or run."""

HookTake = Literal["taken", "busy", "done", "none"]
"""Taking a finish hook: it is yours to run (`taken`), someone else's for now or not yet
free (`busy`), it ran already (`done`), or there is none to run (`none`)."""

CompactOutcome = Literal["done", "more", "skipped"]
"""A compaction step: the generation is compacted (`done`), call again (`more`), or there
is nothing to compact (`skipped`: another generation, still running, or gone)."""


@dataclass(frozen=True, slots=True)
class SessionDetails:
    """A session's state with what the end of its generation needs: when it started and
    ended (ms since the epoch, on storage's clock), its finish hook, and whether its
    events are compacted."""

    state: SessionState
    started_ms: int
    ended_ms: int | None
    hook: HookState
    hook_name: str
    compacted: bool


@dataclass(frozen=True, slots=True)
class Unread:
    """A running generation that ends as abandoned once no reader was seen for `window_ms`."""

    key: str
    generation: str
    window_ms: int


@dataclass(frozen=True, slots=True)
class Append:
    """One producer's write: consecutive events of its generation, and new metadata."""

    key: str
    generation: str
    events: Sequence[StreamEvent]
    metadata: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Events read from storage, and where the stream stood as they were read: a reader
    whose cursor is beyond `last_seq` of a stream that has `ended` saw a tail that a
    failover lost."""

    events: list[StreamEvent]
    last_seq: int
    ended: bool


@dataclass(frozen=True, slots=True)
class Lease:
    """A producer's hold on its key: renewed for all producers of a process at once."""

    key: str
    generation: str


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events just appended to a stream, carried inside the notification itself."""

    events: Sequence[StreamEvent]


@dataclass(frozen=True, slots=True)
class Control:
    """`cancel`, `stopped` and `inbox` (a message was posted to the generation's inbox)
    come from storage; `lost` is raised locally when the
    producer gave up on unavailable storage, so local subscribers end instead of hanging."""

    kind: Literal["cancel", "stopped", "lost", "inbox"]
    generation: str


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A message posted to a running generation: `id` is storage's, and orders entries."""

    id: str
    kind: str
    payload: str
    source: str


@dataclass(frozen=True, slots=True)
class Posted:
    """A message stored in the inbox of `generation`, under `id`."""

    id: str
    generation: str


PostOutcome = Posted | Literal["not_found", "not_running", "full"]
"""Posted, or why not: no session, its generation is not running (ended, or its producer's
lease lapsed), or its inbox holds as many messages not read yet as it may."""


@dataclass(frozen=True, slots=True)
class InboxRead:
    """The owner of `generation` asks for its messages after the id `after` ('': all)."""

    key: str
    generation: str
    after: str = ""


@dataclass(frozen=True, slots=True)
class StorageHint:
    """Something changed that the notification does not carry (events too large to
    carry, or a message this release cannot read): whoever listens reads storage."""


STORAGE_HINT = StorageHint()

Notification = EventBatch | Control | StorageHint
NotificationHandler = Callable[[str, Notification], None]
ResyncHandler = Callable[[], None]


class Backend(Protocol):
    """What the hub needs from storage. Both implementations pass one contract suite."""

    async def open(self, on_notification: NotificationHandler, on_resync: ResyncHandler) -> None:
        """Prepare to deliver notifications; `on_resync` is called when some may have been
        lost. Storage being away is no reason to fail: later calls retry."""

    async def run(self) -> None:
        """Deliver notifications until cancelled. Raises when delivery broke; the hub then
        runs it again, and it subscribes again to everything watched and resyncs."""

    async def ping(self) -> None:
        """Return once storage answers.

        Raises:
            BackendUnavailableError: it did not.
        """

    async def aclose(self) -> None:
        """Release connections; safe to call twice."""

    async def watch(self, key: str, kind: ChannelKind) -> None:
        """Deliver notifications of `key`; returns once delivery is guaranteed."""

    async def unwatch(self, key: str, kind: ChannelKind) -> None:
        """Stop delivering notifications of `key`."""

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
        """Start `generation` unless a live producer holds the key; returns (created, state).

        With `pending`, the generation waits for a worker to `adopt` it within `lease_ms`.
        `retention_ms` is kept with the generation: every end of it applies it. `hook`
        names its finish hook (`''`: none). A generation that still owes its finish hook
        is not replaced either: the answer is then `(False, its state)`, ended (or
        active with a lapsed lease), where a live producer's is active and unlapsed.
        """

    async def adopt(
        self, key: str, *, generation: str, owner: str, token: str, lease_ms: int, retention_ms: int
    ) -> AdoptOutcome:
        """Take over a pending generation, once: `owner` holds its lease from now on.

        A retry that carries the same `token` is answered `ok` again.
        """

    async def append_many(
        self, writes: Sequence[Append], *, retention_ms: int
    ) -> list[AppendOutcome]:
        """Store each write (seqs already stored are skipped) and notify; a terminal ends it.

        Raises:
            BackendUnavailableError: for the whole call; none, some or all may be stored.
        """

    async def refresh_many(
        self, leases: Sequence[Lease], *, lease_ms: int, retention_ms: int
    ) -> list[WriteOutcome]:
        """Extend each owner's lease and its keys' expiry; `ok` or why it was refused."""

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
        """End an active session from outside its producer (cancel, lost producer)."""

    async def release(self, key: str, *, generation: str) -> None:
        """Record that the producer has stopped (its lease ends at once, so an `active`
        session it leaves behind reads as lapsed), and tell whoever waits for it."""

    async def read(
        self,
        key: str,
        *,
        generation: str,
        after_seq: int,
        limit: int,
        max_bytes: int | None = None,
    ) -> Page | None:
        """Events after `after_seq` (at most `limit`, and no more than `max_bytes` of data
        unless the page would be empty), or None if `generation` is no longer the key's."""

    async def states(self, keys: Sequence[str]) -> list[SessionState | None]:
        """The state of each key, None where there is none."""

    async def remove(self, key: str) -> bool:
        """Delete everything stored under `key`."""

    async def session_keys(self, *, limit: int) -> list[str]:
        """The keys of up to `limit` stored sessions, in no particular order: for operators
        (it walks the whole keyspace), never for a request's path."""

    async def session_bytes(self, keys: Sequence[str]) -> list[int | None]:
        """The bytes storage holds for each session (None where there is none): on Redis
        what `MEMORY USAGE` counts for its keys, in memory its events' data."""

    async def details(self, key: str) -> SessionDetails | None:
        """The session's state, times, finish hook and compaction; None if there is none."""

    async def compact(self, key: str, *, generation: str, chunk: int) -> CompactOutcome:
        """One step of compacting the ended `generation` (at most `chunk` raw events).

        Readers see the raw events until the last step swaps the packed ones in, at once;
        a cursor of either stays valid. Safe to repeat, and to interrupt.
        """

    async def take_hook(
        self, key: str, *, generation: str, holder: str, hold_ms: int, grace_ms: int
    ) -> HookTake:
        """Take (or renew) the finish hook of the ended `generation` for `hold_ms`: free
        once it ended `grace_ms` ago, or once its holder's hold lapsed."""

    async def hook_done(self, key: str, *, generation: str) -> None:
        """Record that the finish hook of `generation` ran."""

    async def owe_hooks(self, keys: Sequence[str], *, delay_ms: int) -> str:
        """Index `keys` as maybe owing a finish hook, to be looked at in `delay_ms`;
        returns their index mark."""

    async def due_hooks(self, *, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` indexed keys due to be looked at, each with its index mark."""

    async def drop_hooks(self, entries: Sequence[tuple[str, str]]) -> None:
        """Unindex each key whose index mark is still the one given."""

    async def mark_read(self, keys: Sequence[str], *, hold_ms: int) -> None:
        """Readers follow these running sessions: count them as read for `hold_ms`."""

    async def abandon_unread(
        self, generations: Sequence[Unread], *, data: str, retention_ms: int
    ) -> list[bool]:
        """End with `cancelled` (`data`) each generation no reader followed for its window
        (counted from its start until a reader is first marked); True for each ended."""

    async def post(
        self, key: str, *, kind: str, payload: str, source: str, max_entries: int
    ) -> PostOutcome:
        """Append a message to the inbox of the key's running generation, at once checking
        that it runs, and tell its owner (an `inbox` control message)."""

    async def take(
        self, reads: Sequence[InboxRead], *, limit: int
    ) -> list[list[InboxEntry] | None]:
        """For each read, up to `limit` messages after its `after`, in the order they were
        posted; None where its generation is no longer the key's. Messages up to `after`
        (read already) are dropped: an inbox holds only what its owner has not read."""
