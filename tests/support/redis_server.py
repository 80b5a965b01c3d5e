"""A private `redis-server` process per test: free loopback port, own data directory.

Never the shared Redis on 6379. Use it as a context manager (the `redis_server` and
`make_redis_server` fixtures do)::

    with RedisServer(appendonly=True) as server:
        async with server.client() as r:      # redis.asyncio, decode_responses=True
            await r.set("k", "v")
        server.kill()                         # crash: SIGKILL
        server.restart()                      # same port, same dir: AOF data survives

`pause()`/`resume()` freeze and thaw the server (SIGSTOP/SIGCONT): clients then see
timeouts, not refused connections. `stop()` or `kill()`, then `restart()`, model a
clean shutdown and a crash. `DEBUG SLEEP` is enabled for loopback clients. The
blocking methods take well under a second; a test whose event loop must keep running
meanwhile calls them through `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from tests.support._server import ChildServer


def ping(port: int, *, timeout_s: float = 1.0) -> bool:
    """True if a Redis on 127.0.0.1:`port` answers PING with PONG within `timeout_s`.

    A server still loading its AOF answers `-LOADING`, which counts as not ready.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ChildServer):
    """A `redis-server` child process bound to 127.0.0.1 on a free port.

    Args:
        appendonly: Turn on the AOF with `appendfsync always`, so every acknowledged
            write survives `kill()` + `restart()`.
        extra_args: More `redis-server` options, e.g. `["--maxmemory", "10mb"]`.
        startup_timeout_s: Bound on each wait for the server to answer PING.
        executable: The `redis-server` binary.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout_s: float = 10.0,
        executable: str = "redis-server",
    ) -> None:
        super().__init__("redis", startup_timeout_s=startup_timeout_s)
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)
        self.executable = executable

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self, *, timeout_s: float = 1.0) -> bool:
        """True if the server answers PING within `timeout_s` (False while paused or down)."""
        return ping(self.port, timeout_s=timeout_s)

    def client(self, **kwargs: Any) -> redis.asyncio.Redis:
        """A new `redis.asyncio.Redis` (`decode_responses=True` unless overridden).

        Close it: `async with server.client() as r: ...`. An unclosed client is a
        ResourceWarning, and warnings are errors in this suite.
        """
        kwargs.setdefault("decode_responses", True)
        return redis.asyncio.Redis.from_url(self.url, **kwargs)

    def sync_client(self, **kwargs: Any) -> redis.Redis:
        """A new blocking `redis.Redis`: `with server.sync_client() as r: ...`."""
        kwargs.setdefault("decode_responses", True)
        return redis.Redis.from_url(self.url, **kwargs)

    def _argv(self) -> list[str]:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--dir", str(self.dir), "--daemonize", "no", "--logfile", ""]
        argv += ["--enable-debug-command", "local"]
        argv += ["--appendonly", "yes" if self.appendonly else "no"]
        if self.appendonly:
            argv += ["--appendfsync", "always"]
        return [*argv, *self.extra_args]

    def _ready(self) -> bool:
        return self.ping()
