"""Runs the chosen scenarios against every target, one fresh server per pair."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import profiling
from benchmarks.processes import REPO, RedisServer, Target, app_server, redis_server
from benchmarks.scenarios import SCENARIOS, Context, Figure, median_figures
from benchmarks.sizes import Sizes

Results = dict[int, dict[Target, list[Figure]]]
PACKAGES = ("fastapi", "starlette", "sse-starlette", "uvicorn", "redis", "anyio")


def run(
    numbers: list[int], targets: list[Target], sizes: Sizes, profile_dir: Path | None
) -> tuple[Results, dict[str, Any]]:
    """Every scenario for every target, in that order, so each ratio shares a run.

    With `profile_dir`, each server is sampled by py-spy while it is measured.
    """
    results: Results = {}
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(redis_server()) if "redis" in targets else None
        for number in numbers:
            rounds = SCENARIOS[number].rounds(sizes)
            by_target: dict[Target, list[list[Figure]]] = {t: [] for t in targets}
            for index in range(rounds):
                for target in targets:
                    label = f"{target}, round {index + 1}/{rounds}" if rounds > 1 else target
                    figures = _run_one(number, target, sizes, redis, profile_dir, label)
                    by_target[target].append(figures)
            results[number] = {t: median_figures(by_target[t]) for t in targets}
        return results, machine(redis, load_before)


def _run_one(
    number: int,
    target: Target,
    sizes: Sizes,
    redis: RedisServer | None,
    profile_dir: Path | None,
    label: str,
) -> list[Figure]:
    """One scenario on a fresh server (and an emptied Redis)."""
    scenario = SCENARIOS[number]
    print(f"S{number} {scenario.title}: {label}", file=sys.stderr, flush=True)
    if redis:
        redis.client.flushall()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            app_server(target, scenario.env(sizes), redis.url if redis else "")
        )
        if profile_dir:
            name = label.replace(", round ", "-r").replace("/", "of")
            out = profile_dir / f"s{number}-{name}.txt"
            stack.enter_context(profiling.recording(server.pid, out))
        ctx = Context(server, redis if target == "redis" else None, sizes, target)
        return asyncio.run(scenario.run(ctx))


def machine(redis: RedisServer | None, load_before: float) -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (other work skews them)."""
    versions = {name: metadata.version(name) for name in PACKAGES}
    if redis:
        versions["redis-server"] = redis.version()
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "versions": versions,
        "library": _library_revision(),
    }


def _library_revision() -> dict[str, str | bool]:
    """The commit measured, and whether fastapi_streamhub/ had changes beyond it."""
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    status = [*git, "status", "--porcelain", "--", "fastapi_streamhub"]
    dirty = subprocess.run(status, capture_output=True, text=True).stdout.strip()
    return {"commit": commit.stdout.strip(), "uncommitted_changes": bool(dirty)}


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor()
