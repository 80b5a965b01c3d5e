"""A live slot migration that a test can stop halfway, the way `redis-cli --cluster
reshard` does it: SETSLOT IMPORTING/MIGRATING, MIGRATE key by key, SETSLOT NODE.

While a migration is open, the source still serves the keys it holds and answers
`-ASK` for keys it no longer has; a command on several keys of the slot, split
between the two nodes, gets `-TRYAGAIN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tests.support._cluster_nodes import HOST, NodeInfo, admin, call

if TYPE_CHECKING:
    from tests.support.redis_cluster import LocalCluster

_BATCH = 100
_MIGRATE_TIMEOUT_MS = 5000


class SlotMigration:
    """One slot on its way from `source` to `target` (from `LocalCluster.begin_slot_migration`)."""

    def __init__(
        self, slot: int, *, source: NodeInfo, target: NodeInfo, cluster: LocalCluster
    ) -> None:
        if source.node_id == target.node_id:
            raise ValueError(f"slot {slot} is already on node {target.port}")
        if target.role != "primary":
            raise ValueError(f"node {target.port} is a replica")
        self.slot = slot
        self.source = source
        self.target = target
        self._cluster = cluster

    def begin(self) -> None:
        """IMPORTING on the target first, then MIGRATING on the source (the safe order)."""
        call(self.target.port, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        call(self.source.port, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)

    def keys_left(self, count: int = 1000) -> list[bytes]:
        """Up to `count` keys of the slot that are still on the source."""
        with admin(self.source.port, decode=False) as client:
            keys: list[bytes] = client.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, count)
        return keys

    def move(self, keys: Sequence[str | bytes]) -> None:
        """MIGRATE these keys of the slot to the target (each must be on the source)."""
        if not keys:
            return
        with admin(self.source.port, timeout_s=10.0, decode=False) as client:
            client.execute_command(
                "MIGRATE", HOST, self.target.port, "", 0, _MIGRATE_TIMEOUT_MS, "KEYS", *keys
            )

    def finish(self) -> None:
        """Move every key left, give the slot to the target on every primary, and wait
        until the whole cluster agrees."""
        while keys := self.keys_left(_BATCH):
            self.move(keys)
        assign = ("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        call(self.target.port, *assign)
        call(self.source.port, *assign)
        for node in self._cluster.primaries:
            if node.node_id not in (self.source.node_id, self.target.node_id):
                call(node.port, *assign)
        self._cluster.wait_healthy()
