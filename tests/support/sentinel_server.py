"""A private Redis Sentinel watching one `RedisServer`, for tests of Sentinel URLs and
of failovers (`down_after_ms` and `failover_timeout_ms` make one take a second or two)."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from tests.support.redis_server import RedisServer


class SentinelServer(RedisServer):
    """`redis-server <conf> --sentinel` on a free port, monitoring `master` as `service`.

    Args:
        master: The primary to monitor (its replicas are found through it).
        service: The service name clients ask for.
        down_after_ms: How long the primary may not answer before it counts as down.
        failover_timeout_ms: Sentinel's `failover-timeout` for the service.
    """

    def __init__(
        self,
        master: RedisServer,
        *,
        service: str = "streamhub",
        down_after_ms: int = 30_000,
        failover_timeout_ms: int = 180_000,
    ) -> None:
        super().__init__()
        self.master = master
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def url(self) -> str:
        """`redis+sentinel://127.0.0.1:<port>/<service>/0`, as `StreamHub.from_url` takes it."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def client(self, **kwargs: Any) -> redis.asyncio.Redis:
        """A client of the Sentinel itself (for `SENTINEL ...` commands); close it."""
        kwargs.setdefault("decode_responses", True)
        return redis.asyncio.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def _argv(self) -> list[str]:
        config = self.dir / "sentinel.conf"
        service = self.service
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {service} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {service} {self.down_after_ms}\n"
            f"sentinel failover-timeout {service} {self.failover_timeout_ms}\n"
        )
        return [self.executable, str(config), "--sentinel"]
