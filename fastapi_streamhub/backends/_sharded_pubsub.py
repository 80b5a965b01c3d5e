"""Sharded Pub/Sub on a cluster: one connection per primary that holds watched keys.

A session's channels hash to its slot, so `SPUBLISH` from its scripts reaches only
the shard that holds it, and Pub/Sub load grows with the shards rather than with
the cluster. This process keeps one `PubSubListener` (sharded) per node it needs,
each a plain redis-py `PubSub` on its own client.

redis-py's `ClusterPubSub` is not used: it reads its nodes one after the other
(each read waits its full timeout before the next node's turn), its connections
come from the command client's pools, which redis-py closes on every topology
reload, and it does not follow a slot by itself. Here every channel is homed on
the node the command client's slot map names. Where that changes (a slot migrated:
Redis drops the subscription with a `sunsubscribe`; a failover: the old node's
connection fails), the slot map is refreshed through a plain command on the slot,
which follows `MOVED` or reloads the topology, the channel moves to its new home,
and once Redis confirms it there, readers resync from storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from .._errors import BackendUnavailableError
from ._pubsub import PubSubListener
from ._redis_errors import is_transient

logger = logging.getLogger("fastapi_streamhub")

_RECONCILE_S = 1.0

NodeClient = Callable[[ClusterNode], Redis]


class ShardedListener:
    def __init__(
        self,
        cluster: RedisCluster,
        node_client: NodeClient,
        on_message: Callable[[str, str], None],
        on_resync: Callable[[], None],
        *,
        confirm_timeout_s: float,
    ) -> None:
        self._cluster = cluster
        self._node_client = node_client
        self._on_message = on_message
        self._on_resync = on_resync
        self._confirm_timeout_s = confirm_timeout_s
        self._nodes: dict[str, PubSubListener] = {}
        self._clients: dict[str, Redis] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._home: dict[str, str] = {}
        self._task_group: TaskGroup | None = None
        self._stirred = anyio.Event()
        self._unsettled: set[str] = set()

    async def subscribe(self, channel: str) -> None:
        """Returns once the node that holds the channel's slot confirmed it."""
        node = self._owner(channel)
        self._home[channel] = node.name
        await self._listener(node).subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        name = self._home.pop(channel, None)
        listener = None if name is None else self._nodes.get(name)
        if listener is not None:
            await listener.unsubscribe(channel)

    def _owner(self, channel: str) -> ClusterNode:
        try:
            node = self._cluster.get_node_from_key(channel)
        except Exception as exc:
            raise BackendUnavailableError(f"no node holds {channel!r}: {exc}") from exc
        if node is None:
            raise BackendUnavailableError(f"no node holds {channel!r}")
        return node

    def _listener(self, node: ClusterNode) -> PubSubListener:
        listener = self._nodes.get(node.name)
        if listener is None:
            client = self._clients[node.name] = self._node_client(node)
            listener = self._nodes[node.name] = PubSubListener(
                client,
                self._on_message,
                self._on_resync,
                confirm_timeout_s=self._confirm_timeout_s,
                sharded=True,
                on_moved=self._stir,
                on_lost=self._stir,
            )
            if self._task_group is not None:
                self._task_group.start_soon(self._run_node, node.name, listener)
        return listener

    def _stir(self, channel: str | None = None) -> None:
        """Something moved (a slot, a primary): reconcile now rather than at the next tick.
        A channel Redis dropped is checked even where the slot map has not changed yet."""
        if channel is not None:
            self._unsettled.add(channel)
        self._stirred.set()

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                for name, listener in list(self._nodes.items()):
                    group.start_soon(self._run_node, name, listener)
                await self._reconcile_forever()
        finally:
            self._task_group = None

    async def _run_node(self, name: str, listener: PubSubListener) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[name] = scope
            try:
                await listener.run()
            finally:
                if self._scopes.get(name) is scope:
                    del self._scopes[name]

    async def _reconcile_forever(self) -> None:
        while True:
            with anyio.move_on_after(_RECONCILE_S):
                await self._stirred.wait()
            self._stirred = anyio.Event()
            try:
                await self._reconcile()
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, BackendUnavailableError)):
                    raise
                logger.warning("sharded Pub/Sub: could not follow the slot map yet: %s", exc)

    async def _reconcile(self) -> None:
        """Move every channel whose slot another node now holds, then drop idle nodes."""
        unsettled = set(self._unsettled)
        stray = [
            c for c, name in self._home.items() if c in unsettled or not self._at_home(c, name)
        ]
        if stray:
            await self._refresh(stray)
            self._unsettled -= unsettled
            moved = [
                c
                for c in stray
                if c in self._home and (c in unsettled or self._owner(c).name != self._home[c])
            ]
            async with anyio.create_task_group() as group:
                for channel in moved:
                    group.start_soon(self._move, channel)
            if moved:
                logger.warning("sharded Pub/Sub: %d channels followed their slots", len(moved))
                self._on_resync()
        await self._drop_idle_nodes()

    def _at_home(self, channel: str, name: str) -> bool:
        listener = self._nodes.get(name)
        return (
            listener is not None
            and listener.connected
            and channel in listener.wanted
            and self._owner(channel).name == name
        )

    async def _refresh(self, channels: list[str]) -> None:
        """Let the command client learn where these slots live now: a keyed command
        follows `MOVED` (one slot) or, on a connection error, reloads the topology."""
        slots: dict[int, str] = {}
        for channel in channels:
            slots.setdefault(self._cluster.keyslot(channel), channel)
        for channel in slots.values():
            await self._cluster.exists(channel)

    async def _move(self, channel: str) -> None:
        """Subscribe `channel` where its slot is now (again where it was, if it did not
        move: Redis dropped it all the same)."""
        old = self._nodes.get(self._home[channel])
        if old is not None and old is not self._nodes.get(self._owner(channel).name):
            await old.unsubscribe(channel)
        try:
            await self.subscribe(channel)
        except BackendUnavailableError as exc:
            logger.warning("sharded Pub/Sub: %r not moved yet: %s", channel, exc)
            self._stir()

    async def _drop_idle_nodes(self) -> None:
        """Close the nodes nothing is wanted on, once their last unsubscribes went out
        (streams ending together leave a node idle while those are still being sent)."""
        for name, listener in list(self._nodes.items()):
            if listener.wanted or listener.sending:
                continue
            del self._nodes[name]
            scope = self._scopes.pop(name, None)
            if scope is not None:
                scope.cancel()
            client = self._clients.pop(name, None)
            if client is not None:
                await client.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._nodes.clear()
