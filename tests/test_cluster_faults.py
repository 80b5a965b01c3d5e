"""Faults on a real Redis Cluster, mid-stream, with two hub instances.

Each test produces on instance A and reads on A (its own producer) and on B (through
sharded Pub/Sub), injects the fault halfway, and then requires: every reader ends
with exactly the generator's output (seq 1..n, no gap, no duplicate) and `done`, a
cancel from B still stops a generator running on A, and new streams start. The
clusters are the tests' own (three primaries, three replicas, 1 s node timeout).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import anyio
import anyio.lowlevel
import pytest

from fastapi_streamhub import StreamEvent, StreamHub
from fastapi_streamhub._runner import drive
from tests.support._cluster_nodes import call, info_fields
from tests.support.polling import eventually
from tests.support.redis_cluster import LocalCluster, streamhub_slot

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TOKENS = [f"t{i} " for i in range(200)]
CHANNELS = ("notify", "control")
OPTIONS = {"lease_ttl_s": 120.0, "write_deadline_s": 30.0, "shutdown_grace_s": 1.0}
"""A lease so long that readers cannot lean on idle checks (every 60 s) to catch up:
live notifications must keep flowing through the fault."""


async def paced(tokens: Sequence[str], halfway: anyio.Event) -> AsyncIterator[str]:
    for index, text in enumerate(tokens):
        if index == len(tokens) // 2:
            halfway.set()
        await anyio.sleep(0.01)
        yield text


async def follow(hub: StreamHub, key: str, into: list[StreamEvent]) -> None:
    with anyio.fail_after(20):
        async for event in hub.subscribe(key):
            into.append(event)


def assert_exact(events: list[StreamEvent], tokens: Sequence[str]) -> None:
    assert [e.value for e in events[:-1]] == list(tokens)
    assert [e.seq for e in events] == list(range(1, len(tokens) + 2))
    assert events[-1].event == "done"


async def stream_through(cluster: LocalCluster, key: str, fault: Callable[[], object]) -> None:
    """Produce `key` on A, follow on A and B, run `fault` (in a thread) halfway; then a
    late reader, a cancel from B and a fresh stream must all behave."""
    url = cluster.url
    async with StreamHub.from_url(url, **OPTIONS) as a, StreamHub.from_url(url, **OPTIONS) as b:
        producer, _ = await a.register(key)
        halfway = anyio.Event()
        on_a: list[StreamEvent] = []
        on_b: list[StreamEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(follow, a, key, on_a)
            group.start_soon(follow, b, key, on_b)
            await anyio.lowlevel.checkpoint()
            a.spawn(producer, lambda: drive(producer, paced(TOKENS, halfway)))
            await halfway.wait()
            await anyio.to_thread.run_sync(fault)
        late: list[StreamEvent] = []
        await follow(b, key, late)
        for events in (on_a, on_b, late):
            assert_exact(events, TOKENS)
        await cancel_from_b_stops_a(a, b, key + ":next")
        assert (await a.health()).ready and (await b.health()).ready


async def cancel_from_b_stops_a(a: StreamHub, b: StreamHub, key: str) -> None:
    producer, created = await a.register(key)
    assert created
    stopped = anyio.Event()

    async def forever() -> AsyncIterator[str]:
        try:
            yield "first"
            await anyio.sleep_forever()
        finally:
            stopped.set()

    a.spawn(producer, lambda: drive(producer, forever()))
    await producer.flush()
    with anyio.fail_after(10):
        result = await b.cancel(key, wait=5)
        await stopped.wait()
    assert result is not None and result.cancelled and result.stopped


def key_on(cluster: LocalCluster, node_id: str) -> str:
    return cluster.keys_on_each_primary(prefix="chat-")[node_id][0]


async def test_a_primary_killed_and_its_replica_promoted(
    make_redis_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_redis_cluster()
    victim = cluster.primaries[0]
    key = key_on(cluster, victim.node_id)

    def fail_over() -> None:
        cluster.kill_primary(victim)
        cluster.wait_for_failover(victim)

    await stream_through(cluster, key, fail_over)


async def test_a_live_streams_slot_migrated_to_another_primary(
    make_redis_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_redis_cluster()
    source, target = cluster.primaries[0], cluster.primaries[1]
    key = key_on(cluster, source.node_id)
    await stream_through(cluster, key, lambda: cluster.migrate_slot(streamhub_slot(key), target))
    assert cluster.primary_for_slot(streamhub_slot(key)).node_id == target.node_id


async def test_a_slot_left_half_migrated_answers_ask_then_completes(
    make_redis_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_redis_cluster()
    source, target = cluster.primaries[0], cluster.primaries[2]
    key = key_on(cluster, source.node_id)

    def half_then_whole() -> None:
        migration = cluster.begin_slot_migration(streamhub_slot(key), target)
        migration.move(migration.keys_left()[:1])
        migration.finish()

    await stream_through(cluster, key, half_then_whole)


async def test_the_shards_pubsub_connections_killed(
    make_redis_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_redis_cluster()
    owner = cluster.primaries[1]
    key = key_on(cluster, owner.node_id)
    await stream_through(cluster, key, lambda: cluster.kill_pubsub_connections(owner))


async def test_notifications_reach_only_the_shard_that_holds_the_session(
    shared_redis_cluster: LocalCluster,
) -> None:
    """Sharded Pub/Sub: B subscribes each stream's channel on the primary that holds it,
    and the scripts publish there with SPUBLISH, never a cluster-wide PUBLISH."""
    cluster = shared_redis_cluster
    owners = {keys[0]: node for node, keys in cluster.keys_on_each_primary(prefix="shard-").items()}
    url = cluster.url
    async with StreamHub.from_url(url, **OPTIONS) as a, StreamHub.from_url(url, **OPTIONS) as b:
        got: dict[str, list[StreamEvent]] = {key: [] for key in owners}
        go = anyio.Event()
        async with anyio.create_task_group() as group:
            for key in owners:
                producer, _ = await a.register(key)
                group.start_soon(follow, b, key, got[key])
                a.spawn(producer, lambda p=producer: drive(p, after(go, TOKENS[:20])))

            async def owners_hold_every_channel() -> bool:
                return all(
                    set(call(node.port, "PUBSUB", "SHARDCHANNELS")) == shard_channels(node.node_id)
                    for node in cluster.primaries
                )

            def shard_channels(node_id: str) -> set[str]:
                mine = [k for k, owner in owners.items() if owner == node_id]
                return {f"streamhub:{{{k}}}:{kind}" for k in mine for kind in CHANNELS}

            await eventually(owners_hold_every_channel)
            go.set()
    for key in owners:
        assert_exact(got[key], TOKENS[:20])
    for node in cluster.primaries:
        stats = info_fields(node.port, "commandstats")
        assert "cmdstat_publish" not in stats
        assert "cmdstat_spublish" in stats


async def after(go: anyio.Event, tokens: Sequence[str]) -> AsyncIterator[str]:
    await go.wait()
    for text in tokens:
        yield text


async def test_many_slots_on_one_shard_subscribed_together_and_after_a_kill(
    make_redis_cluster: Callable[..., LocalCluster],
) -> None:
    """Channels of different slots on one node: a sharded subscribe names one slot at a
    time (Redis refuses one SSUBSCRIBE across slots with CROSSSLOT), both when many
    readers arrive together and when the connection is re-established after a kill,
    so the listener never fails and restarts (which would lose notifications meanwhile)."""
    cluster = make_redis_cluster()
    owner = cluster.primaries[0]
    keys = cluster.keys_on_each_primary(prefix="many-", per_primary=6)[owner.node_id]
    assert len({streamhub_slot(key) for key in keys}) == len(keys)
    url = cluster.url
    async with StreamHub.from_url(url, **OPTIONS) as a, StreamHub.from_url(url, **OPTIONS) as b:
        got: dict[str, list[StreamEvent]] = {key: [] for key in keys}
        go, halfway = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as group:
            for key in keys:
                producer, _ = await a.register(key)
                group.start_soon(follow, b, key, got[key])
                a.spawn(producer, lambda p=producer: drive(p, paced_after(go, halfway)))

            async def owner_holds_every_channel() -> bool:
                held = set(call(owner.port, "PUBSUB", "SHARDCHANNELS"))
                return held == {f"streamhub:{{{k}}}:{kind}" for k in keys for kind in CHANNELS}

            await eventually(owner_holds_every_channel)
            go.set()
            await halfway.wait()
            await anyio.to_thread.run_sync(cluster.kill_pubsub_connections, owner)
        failed = {name: t.last_error for name, t in (await b.health()).tasks.items() if t.restarts}
    assert failed == {}
    for key in keys:
        assert_exact(got[key], TOKENS)


async def paced_after(go: anyio.Event, halfway: anyio.Event) -> AsyncIterator[str]:
    await go.wait()
    async for text in paced(TOKENS, halfway):
        yield text
