"""What every scenario shares: its context, its figures, and CPU/Redis sampling."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from benchmarks.cluster import ClusterServer
from benchmarks.processes import AppServer, NodeSample, RedisServer
from benchmarks.sizes import Sizes
from benchmarks.sse_client import SSEStream

T = TypeVar("T")
# Against the baseline, a figure is divided by it, has it subtracted, or neither.
Compare = Literal["ratio", "diff", "none"]
TIMEOUT_S = 180.0  # a stalled stream fails the run instead of hanging it


@dataclass(frozen=True)
class Context:
    """One server under test (and our Redis or cluster when the target has one)."""

    server: AppServer
    redis: RedisServer | ClusterServer | None
    sizes: Sizes
    target: str = ""


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    value: float | None
    compare: Compare = "ratio"
    rounds: tuple[float | None, ...] = ()  # each round's value, when `value` is their median


def median_figures(rounds: list[list[Figure]]) -> list[Figure]:
    """One figure per key from several rounds of a scenario: the median, and every value."""
    if len(rounds) == 1:
        return rounds[0]
    return [
        Figure(
            first.key,
            first.label,
            first.unit,
            median_or_none([round_[index].value for round_ in rounds]),
            first.compare,
            tuple(round_[index].value for round_ in rounds),
        )
        for index, first in enumerate(rounds[0])
    ]


@dataclass(frozen=True)
class Snapshot:
    """Clock, CPU times and Redis command counts at one instant."""

    at: float
    server_cpu_s: float
    redis_cpu_s: float | None  # None: no Redis in this target
    redis_calls: dict[str, int]
    redis_nodes: tuple[NodeSample, ...]  # per primary; () without Redis

    @classmethod
    def take(cls, ctx: Context) -> Snapshot:
        redis = ctx.redis
        return cls(
            at=time.perf_counter(),
            server_cpu_s=ctx.server.proc.cpu_s(),
            redis_cpu_s=redis.proc.cpu_s() if redis else None,
            redis_calls=redis.command_calls() if redis else {},
            redis_nodes=redis.node_samples() if redis else (),
        )

    def cpu_us_per(self, later: Snapshot, count: int) -> float:
        """Server CPU time spent since this snapshot, per unit of work."""
        return (later.server_cpu_s - self.server_cpu_s) * 1e6 / count

    def redis_cpu_us_per(self, later: Snapshot, count: int) -> float | None:
        if self.redis_cpu_s is None or later.redis_cpu_s is None:
            return None
        return (later.redis_cpu_s - self.redis_cpu_s) * 1e6 / count

    def calls_since(self, later: Snapshot) -> dict[str, int]:
        """Redis commands issued since this snapshot, by command (zeros left out)."""
        deltas = {k: v - self.redis_calls.get(k, 0) for k, v in later.redis_calls.items()}
        return {k: v for k, v in sorted(deltas.items()) if v}


class NodeLoad:
    """Redis commands and CPU per unit of work on each primary, over measured windows:
    with keys spread evenly, each of a cluster's primaries should carry its share."""

    def __init__(self) -> None:
        self._calls: list[int] = []
        self._cpu_s: list[float] = []
        self._count = 0

    def add(self, before: Snapshot, after: Snapshot, count: int) -> None:
        """Count the window between two snapshots, in which `count` units were done."""
        deltas = list(zip(before.redis_nodes, after.redis_nodes, strict=True))
        self._calls = self._calls or [0] * len(deltas)
        self._cpu_s = self._cpu_s or [0.0] * len(deltas)
        for index, (start, end) in enumerate(deltas):
            self._calls[index] += end.calls - start.calls
            self._cpu_s[index] += end.cpu_s - start.cpu_s
        self._count += count

    def figures(self, scenario: str, per: str) -> list[Figure]:
        """Two figures per primary (`s2.node_cmds@p1`, ...); none without Redis."""
        figures = []
        for index, (calls, cpu_s) in enumerate(zip(self._calls, self._cpu_s, strict=True)):
            name, key = f"primary {index + 1}", f"@p{index + 1}"
            cmds = Figure(
                f"{scenario}.node_cmds{key}",
                f"{scenario.upper()} Redis commands per {per}, {name}",
                "",
                calls / self._count,
                "none",
            )
            cpu = Figure(
                f"{scenario}.node_cpu_us{key}",
                f"{scenario.upper()} Redis CPU per {per}, {name}",
                "µs",
                cpu_s * 1e6 / self._count,
                "none",
            )
            figures += [cmds, cpu]
        return figures


async def bounded(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(TIMEOUT_S):
        return await awaitable


async def gather_bounded(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    return await bounded(asyncio.gather(*awaitables))


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method, like numpy's default)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def cursor(generation: str, seq: int) -> str:
    """A resume cursor in the server's own id format (`gen:seq`, or `seq` for the baseline)."""
    return f"{generation}:{seq}" if generation else str(seq)


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def resumes(streams: Iterable[SSEStream]) -> int:
    """How many times these streams were resumed after ending early (lagged)."""
    return sum(stream.resumes for stream in streams)
