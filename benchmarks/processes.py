"""The processes a run measures from outside: redis-server and uvicorn servers.

Each runs as its own process so the load generator never shares an
interpreter (or a GIL) with what it measures; CPU time and RSS are read
through psutil around each measured phase.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import psutil
import redis

Target = Literal["baseline", "memory", "redis", "cluster"]
TARGETS: tuple[Target, ...] = ("baseline", "memory", "redis", "cluster")
STORE_TARGETS: tuple[Target, ...] = ("redis", "cluster")  # the targets served from Redis
REPO = Path(__file__).resolve().parent.parent
# The same event loop and HTTP parser for both servers, whatever else is installed.
UVICORN_FLAGS = ["--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning"]


class ServerError(Exception):
    """A server under test failed to start, died, or logged a traceback."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Measured:
    """A process whose CPU time and resident memory we sample."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self._tasks = Path(f"/proc/{pid}/task")

    def cpu_s(self) -> float:
        """CPU time of its live threads, from schedstat's nanoseconds.

        psutil's `cpu_times()` counts 10 ms clock ticks: too coarse for phases
        that cost the server a few tens of milliseconds.
        """
        total_ns = 0
        for task in self._tasks.iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that just ended
                total_ns += int((task / "schedstat").read_text().split()[0])
        return total_ns / 1e9

    def rss(self) -> int:
        return int(self._proc.memory_info().rss)


@dataclass(frozen=True)
class NodeSample:
    """One Redis primary at one instant: commands served so far, CPU time so far."""

    calls: int
    cpu_s: float


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far, leaving out the INFO calls that read them."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in stats.items()
        if name != "cmdstat_info"
    }


class RedisServer:
    """Our own redis-server on a free port (never the shared one on 6379)."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.url = f"redis://127.0.0.1:{port}/0"
        self.client = redis.Redis(port=port)
        self.proc = Measured(proc.pid)

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def flush(self) -> None:
        self.client.flushall()

    def command_calls(self) -> dict[str, int]:
        return command_calls(self.client)

    def node_samples(self) -> tuple[NodeSample, ...]:
        """The one primary, as `ClusterServer.node_samples` gives each of a cluster's."""
        return (NodeSample(sum(self.command_calls().values()), self.proc.cpu_s()),)

    def session_bytes(self, chat_id: str) -> int:
        """`MEMORY USAGE` of every key of that chat's session (state and events)."""
        keys = list(self.client.scan_iter(match=f"*{{chat:{chat_id}}}*", count=1000))
        if not keys:
            raise ServerError(f"no Redis keys for {chat_id!r}")
        return sum(int(self.client.memory_usage(key, samples=0) or 0) for key in keys)

    def stream_bytes(self, chat_id: str) -> int:
        """`MEMORY USAGE` of the stream key holding that chat's events."""
        for key in self.client.scan_iter(match=f"*{chat_id}*", count=1000):
            if self.client.type(key) == b"stream":
                return int(self.client.memory_usage(key, samples=0) or 0)
        raise ServerError(f"no Redis stream key for {chat_id!r}")


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*cmd, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        server = RedisServer(port, proc)
        _wait(lambda: bool(server.client.ping()), proc, "redis-server")
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


class AppServer:
    """A uvicorn process serving one of `benchmarks.servers`' apps."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.pid = proc.pid
        self.proc = Measured(proc.pid)


@contextlib.contextmanager
def app_server(target: Target, env: dict[str, str], redis_url: str) -> Iterator[AppServer]:
    """Start the app for `target` with the workload in `env`; fail on any traceback."""
    factory = "create_baseline_app" if target == "baseline" else "create_streamhub_app"
    port = free_port()
    env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    env["BENCH_REDIS_URL"] = redis_url if target in STORE_TARGETS else ""
    cmd = [sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.servers:{factory}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}/health"
            _wait(lambda: httpx.get(url, timeout=1).status_code == 200, proc, target)
            yield AppServer(port, proc)
        finally:
            proc.terminate()
            proc.wait(30)
            log.seek(0)
            _check_log(target, log.read().decode(errors="replace"))


def _check_log(target: str, text: str) -> None:
    if "Traceback" in text or "ERROR" in text:
        raise ServerError(f"{target} server logged errors:\n{text[:8000]}")


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{name} exited with {proc.returncode} while starting")
        with contextlib.suppress(OSError, httpx.HTTPError, redis.ConnectionError):
            if ready():
                return
        time.sleep(0.05)
    raise ServerError(f"{name} did not become ready in 30 s")
