"""The hub's settings: keyword-only, units in the names, defaults spelt out.

`HubConfig` holds them; `HubOptions` lists the same names for `**options`, so that an
editor completes them and mypy catches a misspelt `lease_ttl_s` (a test keeps the two
in step).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from ._observe import Observer, combine

if TYPE_CHECKING:
    from ._result import StreamResult

FinishHook = Callable[["StreamResult"], Awaitable[None] | None]
"""Called with the result of each generation once it has ended (see `on_finish`)."""

RetentionFor = Callable[[str], float | None]
"""The retention of one key's sessions in seconds, or None for `retention_s`."""

_NOT_NUMBERS = frozenset(
    {
        "compact",
        "compact_after_s",
        "abandon_after_s",
        "on_finish",
        "retention_for",
        "observers",
        "observer",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """Settings shared by every stream of one hub.

    Args:
        lease_ttl_s: how long a producer owns its key without refreshing; a dead
            producer's subscribers learn of it within about this bound.
        retention_s: how long a finished stream stays readable; at least `lease_ttl_s`,
            since a running stream's keys are kept alive by its lease renewals.
        max_queue: events a live subscriber may fall behind before it is ended.
        max_pending: events a producer buffers while storage is slow or away.
        max_batch: events one write carries; well below `max_queue`, so a single
            write can never overflow a subscriber that keeps up.
        max_round_events: events one writer round stores, all streams together, so one
            storage call stays short after an outage left every producer's buffer full.
        max_round_bytes: data bytes one writer round stores, all streams together.
        max_events: events one generation may hold, its terminal event included.
        max_bytes: data bytes one generation may hold.
        max_event_bytes: data bytes of one event.
        replay_batch: events read from storage per round trip when replaying.
        max_replay_bytes: data bytes read from storage per round trip when replaying (a
            page holds at least one event), so no replay is one unbounded reply.
        failover_tail_events: stored events a producer keeps, to write them again if a
            storage failover loses the tail that had not reached a replica.
        shutdown_grace_s: how long running producers may finish at shutdown.
        write_deadline_s: how long storage may stay away before a producer gives up.
        send_timeout_s: how long one send to a client may take; a client that stops
            reading (stalled at the TCP level) is disconnected after it.
        keepalive_s: interval of SSE keep-alive comments while a stream is idle.
        retry_ms: the `retry:` hint sent to SSE clients.
        cancel_wait_s: how long the cancel route waits for the producer to stop.
        compact: pack each finished generation into a compact record (merged text,
            other events whole); every cursor stays valid.
        compact_after_s: how long a finished generation keeps its token-level events
            before it is compacted (0: at once).
        abandon_after_s: cancel (reason `abandoned`) a running generation that no
            reader on any instance has followed for this long; None: never.
        on_finish: called with the `StreamResult` of every generation started through
            this hub, once it has ended, on the instance that ran it (at least once: if
            that instance dies first, another runs it with the same generation id).
        retention_for: the retention of a key's sessions, in seconds, by key; None
            from it (or no function) means `retention_s`.
        start_timeout_s: how long a stream handed to a job queue (`hub.dispatch`) waits
            for a worker to start it; after that its readers get an `error` with the
            reason `not_started`.
        observers: told what the hub does (`fastapi_streamhub.prometheus`,
            `fastapi_streamhub.otel`, or your own `Observer`); none by default.
        max_message_bytes: the size of one steering message (`hub.steer`, the `steer`
            route) as compact JSON; a larger one is refused (HTTP 413).
    """

    lease_ttl_s: float = 10.0
    retention_s: float = 3600.0
    max_queue: int = 1024
    max_pending: int = 10_000
    max_batch: int = 256
    max_round_events: int = 4096
    max_round_bytes: int = 4 * 1024 * 1024
    max_events: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    replay_batch: int = 1000
    max_replay_bytes: int = 4 * 1024 * 1024
    failover_tail_events: int = 256
    shutdown_grace_s: float = 5.0
    write_deadline_s: float = 30.0
    send_timeout_s: float = 30.0
    keepalive_s: float = 15.0
    retry_ms: int = 2000
    cancel_wait_s: float = 2.0
    compact: bool = True
    compact_after_s: float = 10.0
    abandon_after_s: float | None = None
    on_finish: FinishHook | None = None
    retention_for: RetentionFor | None = None
    start_timeout_s: float = 30.0
    observers: Sequence[Observer] = ()
    observer: Observer | None = field(init=False, default=None, repr=False, compare=False)
    """The observers as one, or None when there are none: the hub's one check."""
    max_message_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        object.__setattr__(self, "observers", tuple(self.observers))
        object.__setattr__(self, "observer", combine(self.observers))
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name not in _NOT_NUMBERS and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.compact_after_s < 0:
            raise ValueError(f"compact_after_s must not be negative, got {self.compact_after_s!r}")
        if self.abandon_after_s is not None and self.abandon_after_s <= 0:
            raise ValueError(f"abandon_after_s must be positive, got {self.abandon_after_s!r}")
        if self.max_batch > self.max_queue:
            raise ValueError("max_batch must not exceed max_queue")
        if self.max_batch > self.max_round_events:
            raise ValueError("max_batch must not exceed max_round_events")
        if self.max_events < 2:
            raise ValueError("max_events must leave room for one event and the terminal event")
        if self.retention_s < self.lease_ttl_s:
            raise ValueError(
                f"retention_s ({self.retention_s}) must be at least lease_ttl_s "
                f"({self.lease_ttl_s}): a running stream's keys would expire between two "
                "lease renewals"
            )
        if self.retention_s < self.start_timeout_s:
            raise ValueError(
                f"retention_s ({self.retention_s}) must be at least start_timeout_s "
                f"({self.start_timeout_s}): a stream waiting for a worker would expire first"
            )

    @property
    def lease_ms(self) -> int:
        return int(self.lease_ttl_s * 1000)

    @property
    def start_timeout_ms(self) -> int:
        return int(self.start_timeout_s * 1000)

    @property
    def retention_ms(self) -> int:
        return int(self.retention_s * 1000)

    @property
    def renew_every_s(self) -> float:
        """Lease renewals run four times per lease, so three may fail before it lapses."""
        return self.lease_ttl_s / 4

    @property
    def renew_timeout_s(self) -> float:
        """One renewal call is given up (and retried at once) after an eighth of the lease,
        so one stalled call can never use up the lease."""
        return self.lease_ttl_s / 8

    def retention_ms_for(self, key: str, retention_s: float | None = None) -> int:
        """The retention of `key`'s next generation: `retention_s` if given (a route's),
        else `retention_for(key)`, else the hub's."""
        if retention_s is None and self.retention_for is not None:
            retention_s = self.retention_for(key)
        if retention_s is None:
            return self.retention_ms
        if retention_s < self.lease_ttl_s:
            raise ValueError(
                f"the retention of {key!r} ({retention_s} s) must be at least lease_ttl_s "
                f"({self.lease_ttl_s} s)"
            )
        return int(retention_s * 1000)

    @property
    def hook_hold_ms(self) -> int:
        """How long a finish hook being run is held before another instance may run it;
        its runner renews the hold three times per period while the hook runs."""
        return self.lease_ms

    @property
    def idle_check_s(self) -> float:
        """How often an idle subscriber checks that its producer is still alive."""
        return max(self.lease_ttl_s / 2, 0.05)


class HubOptions(TypedDict, total=False):
    """The keyword arguments of `StreamHub(...)`: the fields of `HubConfig`."""

    lease_ttl_s: float
    retention_s: float
    max_queue: int
    max_pending: int
    max_batch: int
    max_round_events: int
    max_round_bytes: int
    max_events: int
    max_bytes: int
    max_event_bytes: int
    replay_batch: int
    max_replay_bytes: int
    failover_tail_events: int
    shutdown_grace_s: float
    write_deadline_s: float
    send_timeout_s: float
    keepalive_s: float
    retry_ms: int
    cancel_wait_s: float
    compact: bool
    compact_after_s: float
    abandon_after_s: float | None
    on_finish: FinishHook | None
    retention_for: RetentionFor | None
    start_timeout_s: float
    observers: Sequence[Observer]
    max_message_bytes: int
