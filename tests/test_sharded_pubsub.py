"""The sharded Pub/Sub side of the cluster backend, on a real cluster: unsubscribes that
are still going out when their connection closes (the node left idle, or the hub
stopping) end without an error.

The benchmark's S2 found both: 200 streams ending together send one `SUNSUBSCRIBE` per
hash slot, one after another, and the connection was closed under them, by the reconcile
tick that drops idle nodes or by the server shutting down; redis-py then wrote to a
connection it had torn down, and the streams' wind-ups failed.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from fastapi_streamhub.backends._sharded_pubsub import ShardedListener
from fastapi_streamhub.backends._urls import cluster_client_from_url
from tests.support._cluster_nodes import call
from tests.support.polling import eventually
from tests.support.redis_cluster import LocalCluster

pytestmark = pytest.mark.anyio

SLOTS = 8
STEPS = range(8)
"""How far the unsubscribes get before the reconcile tick, in event loop steps: from
the first `SUNSUBSCRIBE` in flight to all of them sent, whatever redis-py awaits."""


async def test_a_node_is_dropped_only_once_its_last_unsubscribes_have_gone_out(
    shared_redis_cluster: LocalCluster,
) -> None:
    cluster = shared_redis_cluster
    owner = cluster.primaries[0]
    keys = cluster.keys_on_each_primary(prefix="idle-", per_primary=SLOTS)[owner.node_id]
    channels = [f"streamhub:{{{key}}}:notify" for key in keys]

    async def owner_holds_nothing() -> bool:
        return call(owner.port, "PUBSUB", "SHARDCHANNELS") == []

    client, node_client = cluster_client_from_url(
        cluster.url, socket_timeout_s=5.0, max_connections=8
    )
    async with client:
        listener = ShardedListener(
            client, node_client, lambda c, m: None, lambda: None, confirm_timeout_s=5.0
        )
        async with anyio.create_task_group() as group:
            group.start_soon(listener.run)
            for steps in STEPS:
                for channel in channels:
                    await listener.subscribe(channel)
                async with anyio.create_task_group() as unsubscribing:
                    for channel in channels:  # one SUNSUBSCRIBE per slot, one after another
                        unsubscribing.start_soon(listener.unsubscribe, channel)
                    for _ in range(steps):
                        await anyio.lowlevel.checkpoint()
                    await listener._reconcile()  # the tick: nothing is wanted on the node
                await eventually(owner_holds_nothing)
            group.cancel_scope.cancel()
        await listener.aclose()


async def test_unsubscribes_going_out_when_the_listener_stops_end_quietly(
    shared_redis_cluster: LocalCluster,
) -> None:
    """The hub stopping cancels the listener, which closes its connections, while the
    wind-ups of the last streams are still unsubscribing: those end without an error."""
    cluster = shared_redis_cluster
    owner = cluster.primaries[1]
    keys = cluster.keys_on_each_primary(prefix="stop-", per_primary=SLOTS)[owner.node_id]
    channels = [f"streamhub:{{{key}}}:control" for key in keys]
    for steps in STEPS:
        client, node_client = cluster_client_from_url(
            cluster.url, socket_timeout_s=5.0, max_connections=8
        )
        async with client:
            listener = ShardedListener(
                client, node_client, lambda c, m: None, lambda: None, confirm_timeout_s=5.0
            )
            async with anyio.create_task_group() as hub:
                hub.start_soon(listener.run)
                for channel in channels:
                    await listener.subscribe(channel)
                async with anyio.create_task_group() as wind_ups:
                    for channel in channels:
                        wind_ups.start_soon(listener.unsubscribe, channel)
                    for _ in range(steps):
                        await anyio.lowlevel.checkpoint()
                    hub.cancel_scope.cancel()  # the hub stops its listener
            await listener.aclose()
