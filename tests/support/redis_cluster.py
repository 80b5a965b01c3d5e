"""A private Redis Cluster per test (or per session): N primaries with R replicas each,
every node a `redis-server --cluster-enabled yes` on free loopback ports.

Never the shared Redis on 6379. Use it as a context manager (the `redis_cluster`,
`make_redis_cluster` and `shared_redis_cluster` fixtures do)::

    with LocalCluster() as cluster:                 # 3 primaries, 1 replica each
        async with cluster.client() as rc:          # redis.asyncio.cluster.RedisCluster
            await rc.set("k", "v")
        old = cluster.primary_for_slot(key_slot(b"k"))
        cluster.kill_primary(old)                   # SIGKILL
        new = cluster.wait_for_failover(old)        # its replica took over
        cluster.restart_node(old)                   # back, as a replica of `new`
        cluster.migrate_slot(key_slot(b"k"), to=old)

Every wait is bounded and polls (no fixed sleeps). The blocking methods take from
milliseconds (kills) to a few seconds (failover); a test whose event loop must keep
running meanwhile calls them through `anyio.to_thread.run_sync`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from tests.support._cluster_nodes import (
    HOST,
    ClusterNodeServer,
    NodeInfo,
    call,
    info_fields,
    map_problem,
    node_problem,
    parse_cluster_nodes,
    slot_map,
)
from tests.support._process import ServerStartError, wait_until
from tests.support.cluster_slots import SlotMigration

_MAX_CANDIDATES = 100_000

__all__ = ["ClusterNotReady", "LocalCluster", "NodeInfo", "SlotMigration", "streamhub_slot"]


class ClusterNotReady(RuntimeError):
    """The cluster did not reach the expected state within the bound."""


def streamhub_slot(key: str) -> int:
    """The hash slot of every storage name of stream `key` (`streamhub:{<escaped>}:...`)."""
    escaped = key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return key_slot(escaped.encode())


class LocalCluster:
    """A Redis Cluster of child processes on 127.0.0.1.

    Args:
        primaries: Number of primaries (at least 3, as `redis-cli --cluster create` needs).
        replicas: Replicas per primary.
        node_timeout_ms: `cluster-node-timeout`: how soon a dead primary is failed over.
        executable: The server binary (`valkey-server` works too).
        cli: The matching `redis-cli`; by default derived from `executable`.
        extra_args: More server options for every node.
        ready_timeout_s: Bound on each wait for the cluster to be whole and agreed.
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        executable: str = "redis-server",
        cli: str | None = None,
        extra_args: Iterable[str] = (),
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.primaries_count = primaries
        self.replicas_per_primary = replicas
        self.node_timeout_ms = node_timeout_ms
        self.executable = executable
        self.cli = cli or executable.removesuffix("-server") + "-cli"
        self.extra_args = tuple(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.servers: list[ClusterNodeServer] = []

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start every node, create the cluster, and wait until it is whole."""
        try:
            for _ in range(self.primaries_count * (1 + self.replicas_per_primary)):
                server = ClusterNodeServer(
                    node_timeout_ms=self.node_timeout_ms,
                    executable=self.executable,
                    startup_timeout_s=10.0,
                    extra_args=self.extra_args,
                )
                self.servers.append(server)
                server.start()
            self._create()
            # A replica that never received a write is left out of CLUSTER SLOTS (its
            # offset is 0), so clients would not know it: one replicated write fixes that.
            self.flushall()
            self.wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every node and delete its directory. Safe to call twice.

        SIGKILL, not SIGTERM: a primary asked to shut down waits for its replicas to
        catch up, and nothing here needs its data afterwards."""
        for server in self.servers:
            server.kill()
            server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        argv = [self.cli, "--cluster", "create", *(f"{HOST}:{s.port}" for s in self.servers)]
        argv += ["--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes"]
        if shutil.which(self.cli) is None:
            raise ServerStartError(f"{self.cli} is not installed")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServerStartError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    # -- facts ------------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node, primaries and replicas, as started."""
        return [(HOST, s.port) for s in self.servers]

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...` over every node."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.startup_nodes)

    @property
    def nodes(self) -> list[NodeInfo]:
        """Every node as the first live node sees it (a snapshot; failed nodes included)."""
        for server in self.servers:
            if server.running:
                try:
                    return self._view(server.port)
                except redis.RedisError:
                    continue
        raise ClusterNotReady("no node answers CLUSTER NODES")

    @property
    def primaries(self) -> list[NodeInfo]:
        """The live primaries that own slots, ordered by their first slot."""
        owners = [n for n in self.nodes if n.slot_ranges and not n.failing]
        return sorted(owners, key=lambda n: n.slot_ranges[0])

    @property
    def replicas(self) -> list[NodeInfo]:
        """The replicas, live or not."""
        return [n for n in self.nodes if n.role == "replica"]

    def primary_for_slot(self, slot: int) -> NodeInfo:
        """The primary that serves `slot` now."""
        for node in self.primaries:
            if node.owns(slot):
                return node
        raise ClusterNotReady(f"no live primary owns slot {slot}")

    def node_by_id(self, node_id: str) -> NodeInfo:
        """The node with this id, as a live node sees it now."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def keys_on_each_primary(
        self,
        slot_of: Callable[[str], int] = streamhub_slot,
        *,
        per_primary: int = 1,
        prefix: str = "stream-",
    ) -> dict[str, list[str]]:
        """`per_primary` keys `<prefix><n>` per primary, by node id, whose `slot_of` it owns.

        `slot_of` maps a user key to the slot its storage lands in; the default is
        the library's naming (`streamhub_slot`).
        """
        primaries = self.primaries
        found: dict[str, list[str]] = {p.node_id: [] for p in primaries}
        for n in range(_MAX_CANDIDATES):
            if all(len(keys) == per_primary for keys in found.values()):
                return found
            owner = next(p for p in primaries if p.owns(slot_of(f"{prefix}{n}")))
            if len(found[owner.node_id]) < per_primary:
                found[owner.node_id].append(f"{prefix}{n}")
        raise ValueError(f"{_MAX_CANDIDATES} keys did not reach every primary: {found}")

    # -- health -----------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the cluster is not whole right now, or None: every running node says
        `cluster_state:ok`, all agree on one slot map covering every slot, each owner
        is running, every other node is a replica whose link to its primary is up, and
        every node lists every live replica in `CLUSTER SLOTS` (what clients learn the
        topology from)."""
        maps = {}
        for server in (s for s in self.servers if s.running):
            try:
                if info_fields(server.port, "cluster-info").get("cluster_state") != "ok":
                    return f"node {server.port} is not ok"
                view = [n for n in self._view(server.port) if not n.failing]
                maps[server.port] = slot_map(view)
                problem = node_problem(server.port, view)
            except redis.RedisError as error:
                return f"node {server.port}: {error!r}"
            if problem:
                return problem
        return map_problem(maps, self._running_ids())

    def wait_healthy(self, *, timeout_s: float | None = None) -> None:
        """Poll until `problem()` is None; raise `ClusterNotReady` after the bound."""
        bound = self.ready_timeout_s if timeout_s is None else timeout_s
        if not wait_until(lambda: self.problem() is None, timeout_s=bound, interval_s=0.05):
            raise ClusterNotReady(f"not whole after {bound} s: {self.problem()}")

    def _running_ids(self) -> set[str]:
        return {n.node_id for n in self.nodes if n.server.running and not n.failing}

    def _view(self, port: int) -> list[NodeInfo]:
        servers = {s.port: s for s in self.servers}
        return parse_cluster_nodes(call(port, "CLUSTER", "NODES"), servers)

    # -- faults -----------------------------------------------------------------------

    def kill_primary(self, node: NodeInfo) -> None:
        """SIGKILL a primary: a crash, no shutdown code runs."""
        if node.role != "primary":
            raise ValueError(f"node {node.port} is a {node.role}")
        node.server.kill()

    def wait_for_failover(self, old: NodeInfo, *, timeout_s: float | None = None) -> NodeInfo:
        """Wait until a replica of the killed `old` primary serves its slots and the
        cluster is whole again; return the new primary."""
        bound = self.ready_timeout_s if timeout_s is None else timeout_s
        slot = old.slot_ranges[0][0]

        def promoted() -> bool:
            try:
                return self.primary_for_slot(slot).node_id != old.node_id
            except (ClusterNotReady, redis.RedisError):
                return False

        if not wait_until(promoted, timeout_s=bound, interval_s=0.05):
            raise ClusterNotReady(f"slot {slot} not failed over after {bound} s")
        self.wait_healthy(timeout_s=bound)
        return self.primary_for_slot(slot)

    def restart_node(self, node: NodeInfo) -> None:
        """Start a killed (or stopped) node again on its ports, with its node id, and wait
        until the cluster is whole. A former primary rejoins as a replica of the node
        that took over, so call this after `wait_for_failover`."""
        node.server.restart()
        self.wait_healthy()

    def kill_pubsub_connections(self, node: NodeInfo | None = None) -> int:
        """`CLIENT KILL TYPE pubsub` on `node` (or every running node); how many died."""
        ports = [node.port] if node else [s.port for s in self.servers if s.running]
        return sum(int(call(port, "CLIENT", "KILL", "TYPE", "pubsub")) for port in ports)

    # -- slots ------------------------------------------------------------------------

    def begin_slot_migration(self, slot: int, to: NodeInfo) -> SlotMigration:
        """Mark `slot` MIGRATING on its owner and IMPORTING on `to`, moving no key yet:
        clients now get `ASK` for keys already moved (`SlotMigration.move`)."""
        migration = SlotMigration(slot, source=self.primary_for_slot(slot), target=to, cluster=self)
        migration.begin()
        return migration

    def migrate_slot(self, slot: int, to: NodeInfo) -> None:
        """Move `slot` with all its keys to `to`, live, and wait until all nodes agree."""
        self.begin_slot_migration(slot, to).finish()

    # -- data and clients -------------------------------------------------------------

    def flushall(self, *, scripts: bool = False) -> None:
        """FLUSHALL on every primary (and SCRIPT FLUSH with `scripts`), then wait until
        every replica has applied it."""
        for node in self.primaries:
            call(node.port, "FLUSHALL", "SYNC")
            if scripts:
                call(node.port, "SCRIPT", "FLUSH", "SYNC")
            call(node.port, "WAIT", self.replicas_per_primary, 2000, timeout_s=5.0)

    def client(self, **kwargs: Any) -> redis.asyncio.cluster.RedisCluster:
        """A new `redis.asyncio.cluster.RedisCluster` (`decode_responses=True` unless
        overridden) on every running node. Close it: `async with cluster.client() as rc`."""
        kwargs.setdefault("decode_responses", True)
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in self._running_nodes()]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def sync_client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A new blocking `redis.cluster.RedisCluster`: `with cluster.sync_client() as rc`."""
        kwargs.setdefault("decode_responses", True)
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in self._running_nodes()]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def logs(self) -> str:
        """Every node's log, one after another (for assertion messages)."""
        return "\n".join(f"----- node {s.port} -----\n{s.logs()[-4000:]}" for s in self.servers)

    def _running_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self.servers if s.running]
