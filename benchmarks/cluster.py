"""The cluster target: a private three-primary Redis Cluster, measured node by node.

The cluster is started by the run itself, on free loopback ports, with the test
suite's `LocalCluster` (tests/support/redis_cluster.py, importable without pytest),
and killed afterwards. It has no replicas: the standalone Redis target has none
either, so the two columns compare like for like, and two shared cores have no room
for three more processes. Commands are counted with `INFO commandstats` and CPU read
from schedstat on each primary, so a figure per primary shows how the load spreads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from benchmarks.processes import Measured, NodeSample, ServerError, command_calls

PRIMARIES = 3
SCENARIOS = frozenset({1, 2, 3, 5})
"""The scenarios the cluster target runs: throughput, pace, fan-out, first event. The
others read back or weigh one stream, whose keys all live on one primary (one hash
slot), so a cluster could only repeat the standalone figures."""
NODE_TIMEOUT_MS = 15_000  # Redis's default: no node is flagged failing under a busy machine


class _Primary:
    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self.client = redis.Redis(port=port)
        self.proc = Measured(pid)

    def sample(self) -> NodeSample:
        return NodeSample(sum(command_calls(self.client).values()), self.proc.cpu_s())


class _AllPrimaries:
    """CPU time of every primary together (the `proc` a scenario reads)."""

    def __init__(self, primaries: list[_Primary]) -> None:
        self._primaries = primaries

    def cpu_s(self) -> float:
        return sum(p.proc.cpu_s() for p in self._primaries)


class ClusterServer:
    """What scenarios read from a Redis target, summed over the primaries, and per primary.

    Primaries are ordered by their first hash slot, so "primary 1" is the same node in
    every figure of a run.
    """

    def __init__(self, url: str, primaries: list[_Primary]) -> None:
        self.url = url
        self._primaries = primaries
        self.proc = _AllPrimaries(primaries)

    def version(self) -> str:
        return str(self._primaries[0].client.info("server")["redis_version"])

    def flush(self) -> None:
        for primary in self._primaries:
            primary.client.flushall()

    def command_calls(self) -> dict[str, int]:
        """Calls per command so far on all primaries together."""
        total: dict[str, int] = {}
        for primary in self._primaries:
            for name, calls in command_calls(primary.client).items():
                total[name] = total.get(name, 0) + calls
        return total

    def node_samples(self) -> tuple[NodeSample, ...]:
        return tuple(p.sample() for p in self._primaries)

    def session_bytes(self, chat_id: str) -> int:
        """`MEMORY USAGE` of every key of that chat's session (one slot: one primary)."""
        for primary in self._primaries:
            keys = list(primary.client.scan_iter(match=f"*{{chat:{chat_id}}}*", count=1000))
            if keys:
                return sum(int(primary.client.memory_usage(k, samples=0) or 0) for k in keys)
        raise ServerError(f"no Redis keys for {chat_id!r} on any primary")

    def stream_bytes(self, chat_id: str) -> int:
        """`MEMORY USAGE` of the stream key holding that chat's events."""
        for primary in self._primaries:
            for key in primary.client.scan_iter(match=f"*{chat_id}*", count=1000):
                if primary.client.type(key) == b"stream":
                    return int(primary.client.memory_usage(key, samples=0) or 0)
        raise ServerError(f"no Redis stream key for {chat_id!r} on any primary")


class ClusterUnavailable(Exception):
    """No local cluster could be started here (a missing binary, an old Redis)."""


@contextlib.contextmanager
def redis_cluster() -> Iterator[ClusterServer]:
    """A three-primary cluster for the run; `ClusterUnavailable` if it cannot start."""
    try:
        from tests.support.redis_cluster import LocalCluster
    except ImportError as exc:  # a copy of benchmarks/ without the test support
        raise ClusterUnavailable(f"tests/support is not importable: {exc}") from exc
    cluster = LocalCluster(primaries=PRIMARIES, replicas=0, node_timeout_ms=NODE_TIMEOUT_MS)
    try:
        cluster.start()
    except Exception as exc:  # whatever stops it, there is no cluster to measure here
        raise ClusterUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        primaries = [_Primary(node.port, node.server.pid) for node in cluster.primaries]
        yield ClusterServer(cluster.url, primaries)
    finally:
        cluster.close()
