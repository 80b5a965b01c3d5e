"""Redis Cluster backend: the Redis backend, with every call kept inside one hash slot.

Every name of a session shares its hash tag, so each script touches one slot. What
takes many sessions at once (a writer round, lease renewals, idle checks) is split
by slot, one script call per slot, and sent in one cluster pipeline: one round trip
per node, the nodes in parallel. Notifications use sharded Pub/Sub in the session's
slot (`_sharded_pubsub.py`), so they reach only the shard's subscribers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from redis.asyncio.cluster import RedisCluster

from ._pubsub import Listener
from ._scripts import Call
from ._sharded_pubsub import NodeClient, ShardedListener
from ._urls import cluster_client_from_url
from .redis import RedisBackend


class RedisClusterBackend(RedisBackend):
    """Stores sessions in a Redis Cluster through a ready `redis.asyncio.cluster.RedisCluster`.

    Args:
        client: the cluster client (created with `decode_responses=True`).
        node_client: makes a plain client for one node, for its sharded Pub/Sub
            connection (the same credentials and TLS settings as `client`).
        max_concurrency: calls in flight at once; redis-py's cluster client refuses a
            call at once rather than wait when a node's connections are all busy.
        **options: as for `RedisBackend`.
    """

    _sharded = True

    def __init__(
        self,
        *,
        client: RedisCluster,
        node_client: NodeClient,
        max_concurrency: int = 64,
        **options: Any,
    ) -> None:
        super().__init__(client=client, **options)
        self._cluster = client
        self._node_client = node_client
        self._limiter = anyio.CapacityLimiter(max_concurrency)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "streamhub:",
        socket_timeout_s: float = 5.0,
        max_connections: int = 64,
        max_notify_bytes: int = 64 * 1024,
        min_replicas_acked: int = 0,
        replica_ack_timeout_s: float = 1.0,
    ) -> RedisClusterBackend:
        """A backend on `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`).

        At most `max_connections` calls are in flight at once, and each node's pool
        holds a few more, for the listener's sharded Pub/Sub connections.
        """
        client, node_client = cluster_client_from_url(
            url, socket_timeout_s=socket_timeout_s, max_connections=max_connections + 8
        )
        return cls(
            client=client,
            node_client=node_client,
            max_concurrency=max_connections,
            prefix=prefix,
            max_notify_bytes=max_notify_bytes,
            min_replicas_acked=min_replicas_acked,
            replica_ack_timeout_s=replica_ack_timeout_s,
            subscribe_timeout_s=socket_timeout_s,
        )

    def _make_listener(self, on_resync: Any) -> Listener:
        return ShardedListener(
            self._cluster,
            self._node_client,
            self._on_message,
            on_resync,
            confirm_timeout_s=self._subscribe_timeout_s,
        )

    async def _call(self, call: Call) -> Any:
        async with self._limiter:
            return await super()._call(call)

    async def _call_many(self, calls: Sequence[Call]) -> list[Any]:
        async with self._limiter:
            return await super()._call_many(calls)

    def _groups(self, keys: Sequence[str]) -> list[list[int]]:
        slots: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            slots.setdefault(self._cluster.keyslot(self._keys.state(key)), []).append(index)
        return list(slots.values())

    def _wait_target(self, call: Call) -> Any:
        return self._cluster.get_node_from_key(call.keys[0])
