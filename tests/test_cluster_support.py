"""The local Redis Cluster helper itself: the cluster it builds is whole and private, keys
land where it says, and each fault it injects does what the fault tests rely on."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import anyio
import pytest
import redis
import redis.asyncio.cluster
import redis.exceptions
from redis.crc import key_slot

from tests.support._cluster_nodes import SLOTS, call
from tests.support._process import ServerStartError
from tests.support.redis_cluster import LocalCluster, NodeInfo, streamhub_slot

pytestmark = pytest.mark.anyio


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _owner_answers(node: NodeInfo, key: str) -> str | None:
    """GET on this node alone, no redirect followed (a MOVED or ASK raises)."""
    with redis.Redis(port=node.port, decode_responses=True) as r:
        value: str | None = r.get(key)
        return value


# -- shape ----------------------------------------------------------------------------


async def test_cluster_is_whole_private_and_agreed(shared_redis_cluster: LocalCluster) -> None:
    cluster = shared_redis_cluster
    ports = [port for _, port in cluster.startup_nodes]
    assert len(ports) == 6 and 6379 not in ports
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    primaries, replicas = cluster.primaries, cluster.replicas
    assert len(primaries) == 3 and len(replicas) == 3
    assert sorted(r.primary_id for r in replicas) == sorted(p.node_id for p in primaries)
    assert sorted(s for p in primaries for s in p.slots) == list(range(SLOTS))
    assert cluster.problem() is None
    async with cluster.client() as rc:
        seen = {(n.port, n.server_type) for n in rc.get_nodes()}
        assert seen == {
            (n.port, "primary" if n.role == "primary" else "replica") for n in cluster.nodes
        }
        for node in primaries:
            assert rc.nodes_manager.get_node_from_slot(node.slots[0]).port == node.port


async def test_keys_land_on_each_primary(shared_redis_cluster: LocalCluster) -> None:
    cluster = shared_redis_cluster
    chosen = cluster.keys_on_each_primary(per_primary=2)
    assert sorted(chosen) == sorted(p.node_id for p in cluster.primaries)
    async with cluster.client() as rc:
        for node_id, keys in chosen.items():
            owner = cluster.node_by_id(node_id)
            assert len(keys) == 2
            for key in keys:
                state = "streamhub:{" + key + "}:state"
                assert key_slot(state.encode()) == streamhub_slot(key)
                assert owner.owns(streamhub_slot(key))
                await rc.set(state, node_id)
                assert _owner_answers(owner, state) == node_id


def test_streamhub_slot_escapes_braces_and_percent() -> None:
    assert streamhub_slot("a{b}") == key_slot(b"a%7Bb%7D")
    assert streamhub_slot("100%") == key_slot(b"100%25")
    assert streamhub_slot("a{b}") != streamhub_slot("a%7Bb%7D")


async def test_flushall_empties_every_node(shared_redis_cluster: LocalCluster) -> None:
    cluster = shared_redis_cluster
    keys = [k for ks in cluster.keys_on_each_primary(per_primary=3).values() for k in ks]
    async with cluster.client() as rc:
        for key in keys:
            await rc.set(key, "v")
    cluster.flushall()
    assert [call(port, "DBSIZE") for _, port in cluster.startup_nodes] == [0] * 6


def test_a_failed_start_leaves_nothing_behind() -> None:
    cluster = LocalCluster(cli="streamhub-no-such-cli")
    with pytest.raises(ServerStartError, match="not installed"), cluster:
        pass
    assert len(cluster.servers) == 6
    for server in cluster.servers:
        assert _gone(server.pid)
        assert not server.dir.exists()


# -- faults ---------------------------------------------------------------------------


async def test_failover_promotes_the_replica_and_keeps_acknowledged_writes(
    redis_cluster: LocalCluster,
) -> None:
    cluster = redis_cluster
    key = "streamhub:{failover}:events"
    old = cluster.primary_for_slot(key_slot(key.encode()))
    replica = next(r for r in cluster.replicas if r.primary_id == old.node_id)
    async with cluster.client() as rc:
        entry_id = await rc.xadd(key, {"seq": "1"})
        owner = rc.get_node_from_key(key)
        assert await rc.execute_command("WAIT", 1, 5000, target_nodes=owner) == 1
    cluster.kill_primary(old)
    new = await anyio.to_thread.run_sync(cluster.wait_for_failover, old)
    assert new.node_id == replica.node_id
    async with cluster.client() as rc:
        assert await rc.xrange(key) == [(entry_id, {"seq": "1"})]
    await anyio.to_thread.run_sync(cluster.restart_node, old)
    rejoined = cluster.node_by_id(old.node_id)
    assert (rejoined.role, rejoined.primary_id) == ("replica", new.node_id)
    assert old.server.running


async def test_a_live_slot_migration_moves_keys_and_a_client_follows_moved(
    redis_cluster: LocalCluster,
) -> None:
    cluster = redis_cluster
    keys = ["streamhub:{moving}:state", "streamhub:{moving}:events"]
    slot = key_slot(keys[0].encode())
    source = cluster.primary_for_slot(slot)
    target = next(p for p in cluster.primaries if p.node_id != source.node_id)
    async with cluster.client() as rc:
        await rc.set(keys[0], "s")
        await rc.xadd(keys[1], {"seq": "1"}, id="1-1")
        await anyio.to_thread.run_sync(cluster.migrate_slot, slot, target)
        assert cluster.primary_for_slot(slot).node_id == target.node_id
        with pytest.raises(redis.exceptions.MovedError):
            _owner_answers(source, keys[0])
        assert await rc.get(keys[0]) == "s"  # the client's slot cache was stale: MOVED
        assert await rc.xrange(keys[1]) == [("1-1", {"seq": "1"})]
        assert rc.get_node_from_key(keys[0]).port == target.port
    assert _owner_answers(target, keys[0]) == "s"


async def test_a_half_done_migration_answers_ask_then_finishes(
    redis_cluster: LocalCluster,
) -> None:
    cluster = redis_cluster
    moved, stayed = "streamhub:{half}:state", "streamhub:{half}:events"
    slot = key_slot(moved.encode())
    target = next(p for p in cluster.primaries if not p.owns(slot))
    async with cluster.client() as rc:
        await rc.set(moved, "m")
        await rc.set(stayed, "s")
        migration = cluster.begin_slot_migration(slot, target)
        migration.move([moved])
        assert migration.keys_left() == [stayed.encode()]
        with pytest.raises(redis.exceptions.AskError):
            _owner_answers(migration.source, moved)
        assert await rc.get(moved) == "m"  # redis-py follows ASK
        assert await rc.get(stayed) == "s"
        with pytest.raises(redis.exceptions.TryAgainError):
            call(
                migration.source.port,
                "EVAL",
                "return redis.call('MGET', KEYS[1], KEYS[2])",
                2,
                moved,
                stayed,
            )
        await anyio.to_thread.run_sync(migration.finish)
        assert await rc.mget(moved, stayed) == ["m", "s"]
    assert cluster.primary_for_slot(slot).node_id == target.node_id


async def test_killed_pubsub_connections_are_seen_by_a_cluster_pubsub(
    shared_redis_cluster: LocalCluster,
) -> None:
    cluster = shared_redis_cluster
    async with cluster.client() as rc:
        channels = [ks[0] for ks in cluster.keys_on_each_primary(rc.keyslot, prefix="ch-").values()]
        pubsub = rc.pubsub()
        try:
            await pubsub.ssubscribe(*channels)
            confirmed = [await _next_message(pubsub) for _ in channels]
            assert sorted(m["channel"] for m in confirmed) == sorted(channels)
            victim = cluster.primary_for_slot(rc.keyslot(channels[0]))
            assert cluster.kill_pubsub_connections(victim) == 1
            # The other nodes' connections stay quiet; reading the killed one raises.
            assert isinstance(await _read_until_error(pubsub), redis.exceptions.ConnectionError)
            # redis-py reconnected and subscribed again before raising: say so, then deliver.
            again = await _next_message(pubsub)
            assert (again["type"], again["channel"]) == ("ssubscribe", channels[0])
            assert await rc.spublish(channels[0], "after") == 1
            message = await _next_message(pubsub)
            assert (message["type"], message["data"]) == ("smessage", "after")
        finally:
            await pubsub.aclose()


async def _next_message(pubsub: redis.asyncio.cluster.ClusterPubSub) -> dict[str, object]:
    with anyio.fail_after(10):
        while (message := await pubsub.get_sharded_message(timeout=0.05)) is None:
            pass
    return message


async def _read_until_error(pubsub: redis.asyncio.cluster.ClusterPubSub) -> Exception:
    with anyio.fail_after(10):
        while True:
            try:
                await pubsub.get_sharded_message(timeout=0.05)
            except Exception as error:  # the error is what the test checks
                return error


def test_pubsub_kill_counts_every_node(shared_redis_cluster: LocalCluster) -> None:
    assert shared_redis_cluster.kill_pubsub_connections() == 0


def test_valkey_cluster_when_installed(make_redis_cluster: Callable[..., LocalCluster]) -> None:
    if shutil.which("valkey-server") is None:
        pytest.skip("valkey-server is not installed (Debian: bookworm-backports)")
    cluster = make_redis_cluster(executable="valkey-server")
    assert cluster.cli == "valkey-cli"
    assert "valkey" in str(call(cluster.primaries[0].port, "INFO", "server")).lower()
    with cluster.sync_client() as rc:
        rc.set("k", "v")
        assert rc.get("k") == "v"
