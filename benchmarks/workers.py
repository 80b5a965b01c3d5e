"""Streams produced by a Taskiq worker against streams produced in the web process.

    python -m benchmarks.workers [--starts 50] [--streams 20] [--tokens 500]

Starts its own redis-server, one uvicorn process (`benchmarks/worker_app.py`) and one
Taskiq worker, then measures:

- time to first event: sequential starts, from sending the POST to the first event
  parsed (through httpx, the same client for both routes), median and p90;
- CPU per token: `--streams` concurrent streams of `--tokens` tokens each, the CPU time
  of the process that produces them (the web process, or the worker) and of the web
  process that serves them, divided by the tokens.

It prints a Markdown table; `docs/performance.md` quotes one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx
import psutil

from benchmarks.processes import REPO, Measured, free_port, redis_server

UVICORN = ["--loop", "asyncio", "--http", "h11", "--no-access-log", "--log-level", "warning"]


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def _wait(ready: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


async def _first_event_ms(http: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    first = None
    async with http.stream("POST", path) as response:
        async for line in response.aiter_lines():
            if first is None and line.startswith("data:"):
                first = time.perf_counter()
            if line.startswith("event: done"):
                break
    if first is None:
        raise RuntimeError(f"{path}: no event")
    return (first - started) * 1000


async def _first_events(port: int, route: str, starts: int) -> list[float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return [await _first_event_ms(http, f"/{route}/ttfe-{i}") for i in range(starts)]


async def _read_all(port: int, route: str, streams: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:

        async def one(i: int) -> None:
            async with http.stream("POST", f"/{route}/cpu-{i}") as response:
                async for line in response.aiter_lines():
                    if line.startswith("event: done"):
                        return

        async with anyio.create_task_group() as group:
            for i in range(streams):
                group.start_soon(one, i)


def _cpu_per_token(
    port: int, route: str, producer: Measured, web: Measured, streams: int, tokens: int
) -> tuple[float, float]:
    before = producer.cpu_s(), web.cpu_s()
    anyio.run(_read_all, port, route, streams)
    after = producer.cpu_s(), web.cpu_s()
    total = streams * tokens
    return (after[0] - before[0]) / total * 1e6, (after[1] - before[1]) / total * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=500)
    args = parser.parse_args(argv)
    port = free_port()
    with redis_server() as redis:
        env = {"BENCH_REDIS_URL": redis.url, "BENCH_TOKENS": str(args.tokens)}
        web_argv = [sys.executable, "-m", "uvicorn", "benchmarks.worker_app:app", *UVICORN]
        worker_argv = [sys.executable, "-m", "taskiq", "worker", "benchmarks.worker_app:broker"]
        with (
            _process([*web_argv, "--port", str(port)], env) as web,
            _process([*worker_argv, "--workers", "1", "--log-level", "WARNING"], env) as worker,
        ):
            _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/health").is_success, "uvicorn")
            _wait(lambda: psutil.Process(worker.pid).children(), "the taskiq worker")
            child = Measured(psutil.Process(worker.pid).children()[0].pid)
            print(_report(port, Measured(web.pid), child, args))
    return 0


def _report(port: int, web: Measured, worker: Measured, args: argparse.Namespace) -> str:
    anyio.run(_first_events, port, "queued", 5)  # warm up both paths
    anyio.run(_first_events, port, "local", 5)
    rows = ["| | in the web process | in a Taskiq worker |", "| --- | --- | --- |"]
    local = anyio.run(_first_events, port, "local", args.starts)
    queued = anyio.run(_first_events, port, "queued", args.starts)
    rows.append(f"| time to first event, median (ms) | {_ms(local, 50)} | {_ms(queued, 50)} |")
    rows.append(f"| time to first event, p90 (ms) | {_ms(local, 90)} | {_ms(queued, 90)} |")
    in_web, _ = _cpu_per_token(port, "local", web, web, args.streams, args.tokens)
    in_worker, serving = _cpu_per_token(port, "queued", worker, web, args.streams, args.tokens)
    rows.append(f"| CPU per token, producing process (µs) | {in_web:.0f} | {in_worker:.0f} |")
    rows.append(f"| CPU per token, web process (µs) | {in_web:.0f} | {serving:.0f} |")
    return "\n".join(rows)


def _ms(samples: list[float], pct: int) -> str:
    if pct == 50:
        return f"{statistics.median(samples):.1f}"
    return f"{statistics.quantiles(samples, n=100)[pct - 1]:.1f}"


if __name__ == "__main__":
    sys.exit(main())
