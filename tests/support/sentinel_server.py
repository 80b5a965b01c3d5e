"""A private Redis Sentinel watching one `RedisServer`, for tests of Sentinel URLs."""

from __future__ import annotations

from tests.support.redis_server import RedisServer


class SentinelServer(RedisServer):
    """`redis-server <conf> --sentinel` on a free port, monitoring `master` as `service`."""

    def __init__(self, master: RedisServer, *, service: str = "streamhub") -> None:
        super().__init__()
        self.master = master
        self.service = service

    @property
    def url(self) -> str:
        """`redis+sentinel://127.0.0.1:<port>/<service>/0`, as `StreamHub.from_url` takes it."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def _argv(self) -> list[str]:
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
        )
        return [self.executable, str(config), "--sentinel"]
