"""The hub's settings: keyword-only, units in the names, defaults spelt out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """Settings shared by every stream of one hub.

    Args:
        lease_ttl_s: how long a producer owns its key without refreshing; a dead
            producer's subscribers learn of it within about this bound.
        retention_s: how long a finished stream stays readable.
        max_queue: events a live subscriber may fall behind before it is ended.
        max_pending: events a producer buffers while storage is slow or away.
        max_batch: events one write carries; well below `max_queue`, so a single
            write can never overflow a subscriber that keeps up.
        max_events: events one generation may hold, its terminal event included.
        max_bytes: data bytes one generation may hold.
        max_event_bytes: data bytes of one event.
        replay_batch: events read from storage per round trip when replaying.
        shutdown_grace_s: how long running producers may finish at shutdown.
        write_deadline_s: how long storage may stay away before a producer gives up.
        keepalive_s: interval of SSE keep-alive comments while a stream is idle.
        retry_ms: the `retry:` hint sent to SSE clients.
        cancel_wait_s: how long the cancel route waits for the producer to stop.
        send_timeout_s: how long a send to an SSE client may block before its response ends.
    """

    lease_ttl_s: float = 10.0
    retention_s: float = 3600.0
    max_queue: int = 1024
    max_pending: int = 10_000
    max_batch: int = 256
    max_events: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    replay_batch: int = 1000
    shutdown_grace_s: float = 5.0
    write_deadline_s: float = 30.0
    keepalive_s: float = 15.0
    retry_ms: int = 2000
    cancel_wait_s: float = 2.0
    send_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.max_batch > self.max_queue:
            raise ValueError("max_batch must not exceed max_queue")
        if self.max_events < 2:
            raise ValueError("max_events must leave room for one event and the terminal event")

    @property
    def lease_ms(self) -> int:
        return int(self.lease_ttl_s * 1000)

    @property
    def retention_ms(self) -> int:
        return int(self.retention_s * 1000)

    @property
    def idle_check_s(self) -> float:
        """How often an idle subscriber checks that its producer is still alive."""
        return max(self.lease_ttl_s / 2, 0.05)
