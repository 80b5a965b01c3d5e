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

from benchmarks import cluster, profiling
from benchmarks.cluster import ClusterServer, ClusterUnavailable
from benchmarks.processes import REPO, RedisServer, Target, app_server, redis_server
from benchmarks.scenarios import SCENARIOS, Context, Figure, median_figures
from benchmarks.sizes import Sizes

Results = dict[int, dict[Target, list[Figure]]]
Store = RedisServer | ClusterServer
PACKAGES = ("fastapi", "starlette", "sse-starlette", "uvicorn", "redis", "anyio")


def run(
    numbers: list[int], targets: list[Target], sizes: Sizes, profile_dir: Path | None
) -> tuple[Results, dict[str, Any]]:
    """Every scenario for every target, in that order, so each ratio shares a run.

    With `profile_dir`, each server is sampled by py-spy while it is measured. The
    cluster target runs `cluster.SCENARIOS` only; it is left out, loudly, where no
    cluster can start.
    """
    results: Results = {}
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        stores: dict[Target, Store] = {}
        if "redis" in targets:
            stores["redis"] = stack.enter_context(redis_server())
        skipped = {}
        if "cluster" in targets and cluster.SCENARIOS.intersection(numbers):
            try:
                stores["cluster"] = stack.enter_context(cluster.redis_cluster())
            except ClusterUnavailable as exc:
                skipped["cluster"] = str(exc)
                _shout(f"NO CLUSTER TARGET IN THIS RUN: a local Redis Cluster did not start: {exc}")
        if "cluster" in targets and (left_out := sorted(set(numbers) - cluster.SCENARIOS)):
            names = ", ".join(f"S{n}" for n in left_out)
            print(f"the cluster target does not run {names}", file=sys.stderr)
        for number in numbers:
            rounds = SCENARIOS[number].rounds(sizes)
            runs = [t for t in targets if _runs(t, number, stores)]
            by_target: dict[Target, list[list[Figure]]] = {t: [] for t in runs}
            for index in range(rounds):
                for target in runs:
                    label = f"{target}, round {index + 1}/{rounds}" if rounds > 1 else target
                    store = stores.get(target)
                    figures = _run_one(number, target, sizes, store, profile_dir, label)
                    by_target[target].append(figures)
            results[number] = {t: median_figures(by_target[t]) for t in runs}
        return results, {**machine(stores, load_before), "skipped_targets": skipped}


def _runs(target: Target, number: int, stores: dict[Target, Store]) -> bool:
    if target == "cluster":
        return "cluster" in stores and number in cluster.SCENARIOS
    return True


def _shout(message: str) -> None:
    line = "!" * min(len(message), 100)
    print(f"\n{line}\n{message}\n{line}\n", file=sys.stderr, flush=True)


def _run_one(
    number: int,
    target: Target,
    sizes: Sizes,
    store: Store | None,
    profile_dir: Path | None,
    label: str,
) -> list[Figure]:
    """One scenario on a fresh server (and an emptied Redis or cluster)."""
    scenario = SCENARIOS[number]
    print(f"S{number} {scenario.title}: {label}", file=sys.stderr, flush=True)
    if store:
        store.flush()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            app_server(target, scenario.env(sizes), store.url if store else "")
        )
        if profile_dir:
            name = label.replace(", round ", "-r").replace("/", "of")
            out = profile_dir / f"s{number}-{name}.txt"
            stack.enter_context(profiling.recording(server.pid, out))
        ctx = Context(server, store, sizes, target)
        return asyncio.run(scenario.run(ctx))


def machine(stores: dict[Target, Store], load_before: float) -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (other work skews them)."""
    versions = {name: metadata.version(name) for name in PACKAGES}
    if store := next(iter(stores.values()), None):
        versions["redis-server"] = store.version()
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
