"""The pieces of a local Redis Cluster below the cluster itself: one node process, the
parsed `CLUSTER NODES` view, and short-lived admin connections.

Admin calls open a fresh blocking connection each time: after a SIGKILL or a
failover a pooled connection would be stale, and these calls are rare.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from tests.support._process import free_port
from tests.support.redis_server import RedisServer

HOST = "127.0.0.1"
SLOTS = 16384

Role = Literal["primary", "replica"]


class ClusterNodeServer(RedisServer):
    """One `redis-server --cluster-enabled yes`: its `nodes.conf` lives in its own
    directory, so `restart()` brings back the same node id on the same ports."""

    def __init__(
        self,
        *,
        node_timeout_ms: int,
        executable: str,
        startup_timeout_s: float,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(
            executable=executable, startup_timeout_s=startup_timeout_s, extra_args=extra_args
        )
        self.node_timeout_ms = node_timeout_ms
        self._bus_port: int | None = None
        self._bus_port_for: int | None = None

    @property
    def bus_port(self) -> int:
        """The cluster bus port (`--cluster-port`), chosen free rather than port + 10000."""
        if self._bus_port is None:
            raise RuntimeError("the node was never started")
        return self._bus_port

    def _argv(self) -> list[str]:
        if self._bus_port_for != self.port:  # a new data port (first start or a bind retry)
            self._bus_port, self._bus_port_for = free_port(), self.port
        return [
            *super()._argv(),
            *("--cluster-enabled", "yes", "--cluster-port", str(self._bus_port)),
            *("--cluster-config-file", str(self.dir / "nodes.conf")),
            *("--cluster-node-timeout", str(self.node_timeout_ms)),
            # Replicas sync at once instead of after the default 5 s diskless delay.
            *("--repl-diskless-sync-delay", "0"),
        ]


@contextmanager
def admin(port: int, *, timeout_s: float = 2.0, decode: bool = True) -> Iterator[redis.Redis]:
    """A fresh blocking connection to one node, closed on exit."""
    client = redis.Redis(
        host=HOST,
        port=port,
        decode_responses=decode,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    try:
        yield client
    finally:
        client.close()


def call(port: int, *args: Any, timeout_s: float = 2.0) -> Any:
    """Run one command on one node (decoded replies)."""
    with admin(port, timeout_s=timeout_s) as client:
        return client.execute_command(*args)


@dataclass(frozen=True)
class NodeInfo:
    """One node as a live node sees it in `CLUSTER NODES` (a snapshot)."""

    node_id: str
    port: int
    role: Role
    #: For a replica, the id of its primary; None for a primary.
    primary_id: str | None
    #: Inclusive (first, last) slot ranges a primary owns; empty for a replica.
    slot_ranges: tuple[tuple[int, int], ...]
    #: The node is flagged `fail` (or `pfail`) by the node that answered.
    failing: bool
    server: ClusterNodeServer = field(compare=False, repr=False)

    def owns(self, slot: int) -> bool:
        """True if this primary serves `slot`."""
        return any(first <= slot <= last for first, last in self.slot_ranges)

    @property
    def slots(self) -> list[int]:
        """Every slot this primary owns."""
        return [s for first, last in self.slot_ranges for s in range(first, last + 1)]


def parse_cluster_nodes(text: str, servers: dict[int, ClusterNodeServer]) -> list[NodeInfo]:
    """`CLUSTER NODES` output as `NodeInfo`s (slot entries in brackets, which mark
    a migration in progress, are left out); nodes not in `servers` are skipped."""
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        if port not in servers:
            continue
        flags = set(fields[2].split(","))
        primary = "master" in flags
        ranges = tuple(_slot_range(item) for item in fields[8:] if not item.startswith("["))
        nodes.append(
            NodeInfo(
                node_id=fields[0],
                port=port,
                role="primary" if primary else "replica",
                primary_id=None if primary else fields[3],
                slot_ranges=ranges if primary else (),
                failing=bool(flags & {"fail", "fail?"}),
                server=servers[port],
            )
        )
    return nodes


def _slot_range(item: str) -> tuple[int, int]:
    first, _, last = item.partition("-")
    return int(first), int(last or first)


def slot_map(nodes: list[NodeInfo]) -> tuple[tuple[int, int, str], ...]:
    """(first, last, owner id) for every owned range, sorted: equal maps agree."""
    return tuple(sorted((first, last, n.node_id) for n in nodes for first, last in n.slot_ranges))


def covers_every_slot(ranges: tuple[tuple[int, int, str], ...]) -> bool:
    """True if the sorted `ranges` cover slots 0..16383 with no hole."""
    expected = 0
    for first, last, _ in ranges:
        if first != expected:
            return False
        expected = last + 1
    return expected == SLOTS


def info_fields(port: int, section: str) -> dict[str, str]:
    """One `INFO <section>` (or `CLUSTER INFO` for section "cluster-info") as a dict."""
    args = ("CLUSTER", "INFO") if section == "cluster-info" else ("INFO", section)
    with admin(port) as client:
        raw = client.execute_command(*args)
    if isinstance(raw, dict):  # redis-py parses INFO itself
        return {k: str(v) for k, v in raw.items()}
    return dict(
        line.split(":", 1) for line in str(raw).splitlines() if ":" in line and line[0] != "#"
    )


def node_problem(port: int, view: list[NodeInfo]) -> str | None:
    """What keeps one node from being whole: its replica link, an empty primary, or
    a replica missing from its `CLUSTER SLOTS`; None if nothing."""
    replication = info_fields(port, "replication")
    if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
        return f"replica {port} has no link to its primary"
    idle = [n.port for n in view if n.role == "primary" and not n.slot_ranges]
    if idle:
        return f"node {port} sees primaries without slots (not replicas yet): {idle}"
    live = {n.port for n in view if n.role == "replica" and n.server.running}
    listed = {int(r[1]) for entry in call(port, "CLUSTER", "SLOTS") for r in entry[3:]}
    return None if listed == live else f"node {port} lists replicas {listed}, not {live}"


def map_problem(maps: dict[int, tuple[tuple[int, int, str], ...]], live: set[str]) -> str | None:
    """What is wrong with the nodes' slot maps (by port): disagreement, a hole, or an
    owner not in `live`; None if nothing."""
    if len(set(maps.values())) > 1:
        return "nodes disagree on the slot map"
    if not maps:
        return "no node is running"
    ranges = next(iter(maps.values()))
    if not covers_every_slot(ranges):
        return "some slots have no owner"
    dead = {owner for _, _, owner in ranges} - live
    return f"slots owned by nodes that are down: {dead}" if dead else None
