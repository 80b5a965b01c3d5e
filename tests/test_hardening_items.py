"""The numbered items of issue 9, one test (or a few) each, on real servers.

Tests that take `hub` or `make_hub` run on both backends; the rest need Redis for
the fault they inject (a permission, a paused server, a killed connection).
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

from fastapi_streamhub import (
    CancelResult,
    SessionNotFoundError,
    StreamEvent,
    StreamHub,
    Subscription,
)
from fastapi_streamhub._config import HubConfig
from fastapi_streamhub._keys import KeySpace
from fastapi_streamhub._runner import drive
from fastapi_streamhub.backends import Control, EventBatch, MemoryBackend
from fastapi_streamhub.backends._base import ChannelKind
from fastapi_streamhub.backends._scripts import Scripts
from tests.support import redis_faults as faults
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.streams import (
    assert_exact,
    assert_healthy,
    collect,
    readers,
    stalled,
    two_hubs,
)

pytestmark = pytest.mark.anyio

_keys = itertools.count()


def fresh_key() -> str:
    return f"item:{next(_keys)}"


# -- item 1: a stream that ends before its control subscription is confirmed ---------


class SlowWatchBackend(MemoryBackend):
    """A watch that takes one slow round trip (50 ms), as a Pub/Sub subscription may."""

    async def watch(self, key: str, kind: ChannelKind) -> None:
        await anyio.sleep(0.05)
        await super().watch(key, kind)


async def test_a_stream_ending_while_its_watch_is_set_up_leaves_others_running() -> None:
    """Every quick stream ends before its 50 ms watch is set up: the race the issue
    found (the hub's task group failed, every other stream was cancelled)."""
    async with StreamHub(backend=SlowWatchBackend(), shutdown_grace_s=0.1) as hub:
        await quick_streams_beside_a_long_one(hub)


async def test_streams_ending_while_redis_is_paused_leave_others_running(
    redis_server: RedisServer,
) -> None:
    """The same on Redis, each quick stream's subscription and writes held 50 ms by
    `CLIENT PAUSE`: whichever Redis answers first, nothing fails and nothing leaks.
    (This cannot force the race, whose order is decided in the hub's process: the
    memory test above does.)"""
    async with StreamHub.from_url(redis_server.url, shutdown_grace_s=0.1) as hub:
        await quick_streams_beside_a_long_one(hub, redis_server)


async def quick_streams_beside_a_long_one(hub: StreamHub, redis: RedisServer | None = None) -> None:
    """Streams that end at once, before their control subscription is confirmed, while
    an unrelated stream runs: it goes on to `done`, the hub stays healthy, and no
    watch of the quick streams is left behind."""
    long_key = fresh_key()
    runner, _ = await hub.register(long_key)
    async with readers((hub, long_key)) as (reader,):
        await runner.publish("before")
        for _ in range(10):
            quick, _ = await hub.register(fresh_key())
            if redis is not None:
                await faults.command(redis, "CLIENT", "PAUSE", "50")
            await quick.publish("quick")
            assert await quick.close() == "done"

        async def only_the_long_stream_watched() -> bool:
            return (await hub.health()).watched_keys == 1

        await eventually(only_the_long_stream_watched)
        await runner.publish("after")
        assert await runner.close() == "done"
    assert_exact(reader.events, ["before", "after"])
    await assert_healthy(hub)
    assert (await hub.health()).watched_keys == 0
    if redis is not None:
        assert await faults.channels(redis, "streamhub:*") == set()


# -- item 3: a start never attaches to a run that storage says has ended -------------


async def test_stop_then_next_message_runs_a_new_generation_when_the_cancel_was_lost(
    redis_server: RedisServer,
) -> None:
    """The producer's instance never hears the cancel (its Redis user may not use the
    control channels, so the signal is lost for good): "stop, then send the next
    message" on that instance still starts a new generation, and the stopped run's
    generator is closed, because a start asks storage before attaching."""
    url_a = await faults.add_user(
        redis_server, "hub_a", "pw", "~*", "+@all", "resetchannels", "&streamhub:*:notify"
    )
    options: dict[str, Any] = {
        "lease_ttl_s": 60.0,
        "shutdown_grace_s": 0.1,
        "socket_timeout_s": 0.5,
    }
    async with (
        StreamHub.from_url(url_a, **options) as a,
        StreamHub.from_url(redis_server.url, **options) as b,
    ):
        key = fresh_key()
        old, _ = await a.register(key)
        started, cleaned_up = anyio.Event(), anyio.Event()
        a.spawn(old, lambda: drive(old, stalled(started, cleaned_up)))
        with anyio.fail_after(5):
            await started.wait()
        result = await b.cancel(key)
        assert result is not None and result.cancelled
        assert old.stop_reason is None, "instance A heard the cancel after all"
        new, created = await a.register(key)
        assert created and new.generation != old.generation
        assert cleaned_up.is_set()
        assert await old.wait() == "cancelled"
        await new.publish("next answer")
        await new.close()
        assert_exact(await collect(b, key), ["next answer"])


async def test_a_resync_stops_a_producer_whose_cancel_was_published_while_away(
    redis_server: RedisServer,
) -> None:
    """Instance A's Pub/Sub connection is killed in the same transaction that stores
    and publishes the cancel, so A never receives the signal. Its generator waits
    forever (no write to be refused) and its lease outlives the test (no renewal to be
    refused): only the state check after A's listener resubscribes can stop it."""
    url_a = await faults.add_user(redis_server, "hub_a", "pw", "~*", "&*", "+@all")
    async with StreamHub.from_url(url_a, lease_ttl_s=60.0, shutdown_grace_s=0.1) as a:
        key = fresh_key()
        producer, _ = await a.register(key)
        started, cleaned_up = anyio.Event(), anyio.Event()
        a.spawn(producer, lambda: drive(producer, stalled(started, cleaned_up)))
        with anyio.fail_after(5):
            await started.wait()

        async def watched() -> bool:
            return key in str(await faults.channels(redis_server))

        await eventually(watched)
        assert await faults.cancel_unheard(redis_server, "hub_a", key) == 1
        with anyio.fail_after(5):
            assert await producer.wait() == "cancelled"
        assert cleaned_up.is_set()
        await assert_healthy(a)


async def test_a_cancel_of_the_previous_turn_leaves_the_next_turn_running(
    hub: StreamHub,
) -> None:
    """A stop that races the next turn names the turn it meant: the next turn goes on,
    and the cancel does not wait for the next turn to stop (it never will)."""
    key = fresh_key()
    first, _ = await hub.register(key)
    await first.publish("first answer")
    await first.close()
    second, _ = await hub.register(key)
    await second.publish("second")
    with anyio.fail_after(5):
        result = await hub.cancel(key, generation=first.generation, wait=30)
    assert result is not None and not result.cancelled
    assert (result.status.generation, result.status.status) == (second.generation, "active")
    assert second.stop_reason is None
    await second.publish(" answer")
    assert await second.close() == "done"
    assert_exact(await collect(hub, key), ["second", " answer"])


async def test_the_stopped_wait_ignores_another_generations_signal(
    redis_server: RedisServer,
) -> None:
    """A late `stopped` of the previous run (its wind-up is slow) arrives while a cancel
    waits for the current run to stop: the cancel keeps waiting for its own."""
    async with StreamHub.from_url(redis_server.url, shutdown_grace_s=0.1) as hub:
        key = fresh_key()
        previous, _ = await hub.register(key)
        await previous.close()
        current = "current-run"  # claimed by an instance that is not this one
        created, _ = await hub.backend.claim(
            key, generation=current, owner="elsewhere", lease_ms=60_000, retention_ms=60_000
        )
        assert created
        seen = SignalLog()
        await hub._fanout.add(key, "control", seen.on_signal)
        results: list[CancelResult | None] = []
        async with anyio.create_task_group() as group:

            async def cancel() -> None:
                results.append(await hub.cancel(key, wait=30))

            group.start_soon(cancel)
            await eventually(lambda: cancelled(hub, key))
            control = KeySpace().control_channel(key)
            late = f"C\nstopped\n{previous.generation}"
            await faults.command(redis_server, "PUBLISH", control, late)
            await seen.wait_for(previous.generation)
            await hub.backend.release(key, generation=current)
        (result,) = results
        assert result is not None and result.cancelled and result.stopped
        assert result.status.generation == current


class SignalLog:
    """Records the `stopped` signals a key's control channel carries."""

    def __init__(self) -> None:
        self.stopped: list[str] = []
        self._arrived = anyio.Event()

    def on_signal(self, signal: object) -> None:
        if isinstance(signal, Control) and signal.kind == "stopped":
            self.stopped.append(signal.generation)
            self._arrived.set()
            self._arrived = anyio.Event()

    async def wait_for(self, generation: str) -> None:
        with anyio.fail_after(5):
            while generation not in self.stopped:
                await self._arrived.wait()


async def cancelled(hub: StreamHub, key: str) -> bool:
    status = await hub.status(key)
    return status is not None and status.status == "cancelled"


# -- item 8: a subscription opens itself ---------------------------------------------


async def test_iterating_without_open_yields_the_stored_stream(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    for value in ("a", "b"):
        await producer.publish(value)
    await producer.close()
    assert_exact([event async for event in hub.subscribe(key)], ["a", "b"])
    with pytest.raises(SessionNotFoundError):
        async for _ in hub.subscribe(fresh_key()):
            pass


async def test_a_stream_removed_between_open_and_read_is_not_found(hub: StreamHub) -> None:
    """Gone from storage (expired or removed) after the reader opened it and before its
    first read: the reader finds no stream, as `open` would have a moment later, rather
    than an error event about a producer that was never lost."""
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("a")
    await producer.close()
    subscription = await hub.subscribe(key).open()
    assert await hub.remove(key)
    with pytest.raises(SessionNotFoundError):
        async for _ in subscription:
            pass


# -- item 9: no leaks, cheap idle checks ----------------------------------------------


async def test_readers_cancelled_before_their_subscription_is_confirmed_leave_nothing(
    redis_server: RedisServer,
) -> None:
    """Under a 300 ms `CLIENT PAUSE`, 20 readers start (their SUBSCRIBE waits in Redis)
    and are cancelled. Once Redis confirms the subscriptions nobody wants any more,
    they are dropped: no channel stays subscribed, the fan-out holds no watch."""
    options: dict[str, Any] = {"lease_ttl_s": 60.0, "shutdown_grace_s": 0.1}
    async with two_hubs(redis_server.url, **options) as (a, b):
        keys = [fresh_key() for _ in range(20)]
        for key in keys:
            await a.register(key)
        subscriptions = [await b.subscribe(key).open() for key in keys]
        await faults.log_every_command(redis_server)
        await faults.command(redis_server, "CLIENT", "PAUSE", "300")
        async with anyio.create_task_group() as group:
            for subscription in subscriptions:
                group.start_soon(drain, subscription)

            async def all_pending() -> bool:
                return b._fanout.watched == len(keys)

            await eventually(all_pending)
            group.cancel_scope.cancel()
        await faults.command(redis_server, "PING")  # answered once the pause is over
        names = {KeySpace().event_channel(key) for key in keys}

        async def none_left() -> bool:
            return not names & await faults.channels(redis_server)

        await eventually(none_left)
        assert names <= await faults.subscribed_channels(redis_server)
        assert (await b.health()).watched_keys == 0


async def drain(subscription: Subscription) -> None:
    async for _ in subscription:
        pass


async def test_status_costs_one_command(redis_server: RedisServer) -> None:
    """One `EVALSHA` (no `SCRIPT EXISTS` before it); `TIME` and `HMGET` are what the
    script itself runs, inside that one call."""
    async with StreamHub.from_url(redis_server.url, shutdown_grace_s=0.1) as hub:
        key = fresh_key()
        producer, _ = await hub.register(key)
        await producer.close()
        await hub.status(key)  # the connection is open from now on
        async with redis_server.client() as admin:
            before = await faults.command_calls(admin)
            status = await hub.status(key)
            after = await faults.command_calls(admin)
    assert status is not None and status.status == "done"
    ran = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}
    assert ran == {"evalsha": 1, "time": 1, "hmget": 1, "info": 1}  # INFO: `before`


async def test_idle_readers_cost_one_check_per_interval_for_all_of_them(
    redis_server: RedisServer,
) -> None:
    """50 idle readers of streams produced elsewhere cost their instance one `states`
    call per idle interval in all (not one per reader); 50 idle readers of streams
    produced in their own instance cost none (they hear of the end directly)."""
    count, lease = 50, 0.4
    url_a = await faults.add_user(redis_server, "hub_a", "pw", "~*", "&*", "+@all")
    url_b = await faults.add_user(redis_server, "hub_b", "pw", "~*", "&*", "+@all")
    options: dict[str, Any] = {"lease_ttl_s": lease, "shutdown_grace_s": 0.1}
    async with (
        StreamHub.from_url(url_a, **options) as a,
        StreamHub.from_url(url_b, **options) as b,
    ):
        keys = [fresh_key() for _ in range(count)]
        producers = [(await a.register(key))[0] for key in keys]
        async with readers(*((hub, key) for key in keys for hub in (a, b))):
            await faults.log_every_command(redis_server)
            window = 5 * b.config.idle_check_s
            await anyio.sleep(window)  # the span over which the checks are counted
            run = await faults.scripts_run_by_user(redis_server)
            for producer in producers:
                await producer.close()
    shas = Scripts().sha
    rounds = {shas["refresh"], shas["inbox_take"]}  # renewals, and the inboxes read with them
    renewals = [sha for sha in run.get("hub_a", []) if sha in rounds]
    assert run.get("hub_a", []) == renewals, "the producing instance checked its own streams"
    checks = run.get("hub_b", [])
    assert set(checks) <= {shas["states"]}, checks
    assert len(checks) <= window / b.config.idle_check_s + 2, checks


# -- item 9, generations never mix in a reader's queue -------------------------------


async def test_a_live_queue_never_takes_another_generations_events_as_its_own(
    hub: StreamHub,
) -> None:
    """G1:4 and G1:5 arrive, then G2:6 and G2:7 (a notification of another run):
    the reader sends G1's 4 and 5, checks storage rather than take G2's 6 for G1's,
    and still ends with G1's own 6 and its `done`."""
    key = fresh_key()
    producer, _ = await hub.register(key)
    for value in ("a", "b", "c"):
        await producer.publish(value)
    await producer.flush()
    got: list[StreamEvent] = []
    async with hub.subscribe(key) as subscription:
        batches = subscription.batches()
        got += await batches.__anext__()
        assert [e.seq for e in got] == [1, 2, 3]
        for value in ("d", "e"):
            await producer.publish(value)
        await producer.flush()
        other = [StreamEvent("G2", seq, None, f'"{seq}"') for seq in (6, 7)]
        subscription._on_signal(EventBatch(other))
        got += await batches.__anext__()
        await producer.publish("f")
        await producer.close()
        async for batch in batches:
            got += batch
    assert_exact(got, ["a", "b", "c", "d", "e", "f"])
    assert {e.generation for e in got} == {producer.generation}


# -- item 9, a quick restart --------------------------------------------------------


async def test_a_quick_restart_ends_the_previous_runs_readers_with_cancelled(
    hub: StreamHub,
) -> None:
    """Stop, then send the next message at once: readers of the stopped run on this
    instance end with its `cancelled`, not with a made-up "producer lost"."""
    key = fresh_key()
    first, _ = await hub.register(key)
    await first.publish("one")
    await first.flush()
    async with hub.subscribe(key) as subscription:
        batches = subscription.batches()
        assert [e.value for e in await batches.__anext__()] == ["one"]
        result = await hub.cancel(key)
        assert result is not None and result.cancelled
        second, created = await hub.register(key)
        assert created and second.generation != first.generation
        rest = [event async for batch in batches for event in batch]
    assert [(e.id, e.event) for e in rest] == [(f"{first.generation}:2", "cancelled")]
    await second.close()


# -- item 9, retention shorter than the lease ----------------------------------------


def test_retention_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match=r"retention_s \(5\.0\) must be at least lease_ttl_s"):
        StreamHub(lease_ttl_s=10.0, retention_s=5.0)
    with pytest.raises(ValueError, match="retention_s"):
        HubConfig(lease_ttl_s=2.0, retention_s=1.0)
    config = HubConfig(lease_ttl_s=2.0, retention_s=2.0, start_timeout_s=2.0)
    assert config.retention_s == 2.0
