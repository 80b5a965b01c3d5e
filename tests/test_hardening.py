"""No Redis reply can take the hub down (issue 9, "How it is shown").

Each test runs two hubs on one real `redis-server`: a producer on one, a reader on
each, a fault in the middle of the stream. Afterwards every reader holds exactly the
producer's output (seq 1..n, no gap, no repeat) and its terminal event, the hubs
report themselves ready with every shared task running, and a stream started after
the fault completes. The faults are the server's own (memory full, a demoted
primary, killed connections, a frozen process, garbage on the channels), never mocks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest

from fastapi_streamhub import Producer, StreamHub
from fastapi_streamhub._runner import drive
from fastapi_streamhub.backends._scripts import Scripts
from tests.support import redis_faults as faults
from tests.support import streams
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.streams import (
    assert_exact,
    assert_healthy,
    collect,
    readers,
    run_a_new_stream,
    stalled,
)

pytestmark = pytest.mark.anyio

FAST = {"shutdown_grace_s": 0.5, "socket_timeout_s": 2.0, "lease_ttl_s": 3.0}
"""A lease short enough that a renewal is refused during each fault, long enough that a
loaded machine's slow replies do not lose it."""
RENEWAL_REFUSED = "leases not renewed, retrying"


def two_hubs(url: str, **options: Any) -> AbstractAsyncContextManager[tuple[StreamHub, StreamHub]]:
    return streams.two_hubs(url, **{**FAST, **options})


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    async def seen() -> bool:
        return text in caplog.text

    await eventually(seen)


async def publish(producer: Producer, values: list[str]) -> None:
    for value in values:
        await producer.publish(value)


async def stream_through(
    a: StreamHub,
    b: StreamHub,
    key: str,
    fault: Callable[[], Awaitable[None]],
    refused: Callable[[], Awaitable[None]],
    lift: Callable[[], Awaitable[None]],
) -> None:
    """Produce on `a`, read on `a` and `b`; the fault strikes after the first third,
    the second third is published while storage refuses it (`refused` waits until it
    has), the last after the fault is lifted."""
    values = [f"t{i} " for i in range(150)]
    producer, _ = await a.register(key)
    async with readers((a, key), (b, key)) as (local, remote):
        await publish(producer, values[:50])
        await producer.flush()
        await fault()
        await publish(producer, values[50:100])
        await refused()
        await lift()
        await publish(producer, values[100:])
        assert await producer.close() == "done"
    for reader in (local, remote):
        assert_exact(reader.events, values)


async def test_memory_full_mid_stream_then_freed_loses_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """`maxmemory` with `noeviction` refuses appends and lease renewals with `OOM`:
    retried until memory is freed, and no stream ends."""
    caplog.set_level(logging.WARNING, "fastapi_streamhub")
    async with two_hubs(redis_server.url) as (a, b):
        before = await faults.error_count(redis_server, "OOM")

        async def refused() -> None:
            await faults.wait_for_errors(redis_server, "OOM", more_than=before)
            await logged(caplog, RENEWAL_REFUSED)

        await stream_through(
            a,
            b,
            "chat:oom",
            lambda: faults.fill_memory(redis_server),
            refused,
            lambda: faults.free_memory(redis_server),
        )
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-oom")
    assert "storage unavailable, retrying" in caplog.text


async def test_primary_demoted_then_promoted_back_loses_nothing(
    make_redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A plain `redis://` URL whose server is demoted to a replica (as a DNS-based
    managed failover does): writes are refused with `READONLY` and retried until it
    is a primary again."""
    caplog.set_level(logging.WARNING, "fastapi_streamhub")
    primary = make_redis_server(extra_args=faults.PRIMARY_ARGS)
    other = make_redis_server()
    await faults.replicate(other, primary.port)
    async with two_hubs(primary.url) as (a, b):
        before = await faults.error_count(primary, "READONLY")

        async def refused() -> None:
            await faults.wait_for_errors(primary, "READONLY", more_than=before)
            await logged(caplog, RENEWAL_REFUSED)

        await stream_through(
            a,
            b,
            "chat:demoted",
            lambda: faults.demote(primary, to=other),
            refused,
            lambda: faults.promote(primary),
        )
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-demotion")
    assert "storage unavailable, retrying" in caplog.text


def garbage(generation: str) -> list[bytes]:
    """Messages no release of this library writes, and some a later one might."""
    return [
        b"",
        b"random text, no fields",
        f'E\n{generation}\nseven\n\n"x"'.encode(),
        f"E\n{generation}\n2\n".encode(),
        f"R\n{generation}\n1\n".encode(),
        f"C\nsteer\n{generation}".encode(),
        f"E2\n{generation}\n1\nsteer\n{{}}\nextra".encode(),
    ]


async def test_garbage_on_every_channel_stops_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed, old and future messages on every channel the hubs listen to (a
    rolling deploy, a stray publisher): each is skipped, the listener goes on (not
    even restarted), and afterwards notifications and cancels still arrive."""
    await garbage_everywhere(redis_server, garbage)


async def test_a_message_that_is_not_utf8_is_skipped_too(redis_server: RedisServer) -> None:
    """Not UTF-8 is garbage like any other: skipped, the connection kept."""
    await garbage_everywhere(redis_server, lambda generation: [b"\xff\xfe\x00 not UTF-8"])


async def garbage_everywhere(
    redis_server: RedisServer, messages: Callable[[str], list[bytes]]
) -> None:
    values = [f"v{i}" for i in range(40)]
    async with two_hubs(redis_server.url, lease_ttl_s=30.0) as (a, b):
        producer, _ = await a.register("chat:noisy")
        waiting, _ = await a.register("chat:waiting")
        started, cleaned_up = anyio.Event(), anyio.Event()
        a.spawn(waiting, lambda: drive(waiting, stalled(started, cleaned_up)))
        async with readers((a, "chat:noisy"), (b, "chat:noisy"), (b, "chat:waiting")) as found:
            await publish(producer, values[:20])
            await found[1].wait_for_seq(20)
            with anyio.fail_after(5):
                await started.wait()
            connections = await faults.pubsub_client_ids(redis_server)
            names = await faults.channels(redis_server, "streamhub:*")
            assert {n.rsplit(":", 1)[1] for n in names} == {"notify", "control"}
            payloads = messages(producer.generation) + messages(waiting.generation)
            assert await faults.publish_each(redis_server, names, *payloads) >= len(names)
            await publish(producer, values[20:])
            await found[1].wait_for_seq(40)
            assert await faults.pubsub_client_ids(redis_server) == connections
            await producer.close()
            result = await b.cancel("chat:waiting", wait=5)
            assert result is not None and result.cancelled and result.stopped
            assert cleaned_up.is_set()
        assert_exact(found[0].events, values)
        assert_exact(found[1].events, values)
        assert_exact(found[2].events, ["waiting"], "cancelled")
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-garbage")


async def test_pubsub_connections_killed_mid_stream(redis_server: RedisServer) -> None:
    """`CLIENT KILL TYPE pubsub` drops both instances' listeners at once: readers on
    the other instance still get every event once, and a cancel sent right after the
    kill (which the producer's instance may never hear) still stops the producer."""
    values = [f"k{i}" for i in range(60)]
    async with two_hubs(redis_server.url, lease_ttl_s=30.0) as (a, b):
        producer, _ = await a.register("chat:killed")
        waiting, _ = await a.register("chat:stalled")
        started, cleaned_up = anyio.Event(), anyio.Event()
        a.spawn(waiting, lambda: drive(waiting, stalled(started, cleaned_up)))
        async with readers((a, "chat:killed"), (b, "chat:killed"), (b, "chat:stalled")) as found:
            await publish(producer, values[:30])
            await found[1].wait_for_seq(30)
            with anyio.fail_after(5):
                await started.wait()
            before = await faults.pubsub_client_ids(redis_server)
            assert len(before) == 2
            assert await faults.command(redis_server, "CLIENT", "KILL", "TYPE", "pubsub") == 2
            result = await b.cancel("chat:stalled", wait=5)
            assert result is not None and result.cancelled and result.stopped
            assert cleaned_up.is_set()
            await publish(producer, values[30:])
            await producer.close()
        assert not before & await faults.pubsub_client_ids(redis_server)
        assert_exact(found[0].events, values)
        assert_exact(found[1].events, values)
        assert_exact(found[2].events, ["waiting"], "cancelled")
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-kill")


async def test_redis_frozen_longer_than_a_renewal_call_keeps_the_lease(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Frozen for longer than one renewal call may take (an eighth of the lease) but
    less than the lease: the stalled call is given up and retried, the lease holds,
    no reader is told the producer was lost."""
    caplog.set_level(logging.WARNING, "fastapi_streamhub")
    lease = 3.0
    values = [f"f{i}" for i in range(60)]
    async with two_hubs(redis_server.url, lease_ttl_s=lease, socket_timeout_s=5.0) as (a, b):
        producer, _ = await a.register("chat:frozen")
        async with readers((a, "chat:frozen"), (b, "chat:frozen")) as found:
            await publish(producer, values[:20])
            await producer.flush()
            async with anyio.create_task_group() as group:
                outage = a.config.renew_every_s + 2 * a.config.renew_timeout_s
                assert a.config.renew_timeout_s < outage < lease
                group.start_soon(faults.freeze, redis_server, outage)
                await publish(producer, values[20:40])
            await publish(producer, values[40:])
            assert await producer.close() == "done"
        for reader in found:
            assert_exact(reader.events, values)
    assert RENEWAL_REFUSED in caplog.text
    assert "producer lost" not in caplog.text


@pytest.mark.slow
async def test_a_backlog_of_thousands_of_producers_is_stored_in_bounded_rounds(
    redis_server: RedisServer,
) -> None:
    """Redis frozen while 2,000 producers publish: each buffers its events. After the
    thaw the backlog goes out in rounds of at most `max_round_events` events, so
    no script call holds Redis for the whole backlog and lease renewals get through:
    every stream completes exactly, none reported lost."""
    count, backlog = 2000, 10
    keys = [f"chat:backlog:{i}" for i in range(count)]
    async with two_hubs(redis_server.url, lease_ttl_s=5.0, socket_timeout_s=5.0) as (a, b):
        producers = await register_all(a, keys)
        watched = [(hub, key) for key in keys[:100] for hub in (a, b)]
        async with readers(*watched, timeout_s=60) as found:
            await publish_to_all(producers, ["first"])
            await faults.log_every_command(redis_server)
            await anyio.to_thread.run_sync(redis_server.pause)
            try:
                await publish_to_all(producers, [f"b{i}" for i in range(backlog)])
                await anyio.sleep(1.5)  # how long the outage lasts: the fault, not a wait
            finally:
                await anyio.to_thread.run_sync(redis_server.resume)
            for producer in producers:
                await producer.flush()
            calls = await faults.script_calls(redis_server, Scripts().sha["append"])
            await publish_to_all(producers, ["last"])
            for producer in producers:
                assert await producer.close() == "done"
        expected = ["first", *(f"b{i}" for i in range(backlog)), "last"]
        for reader in found:
            assert_exact(reader.events, expected)
        for key in keys:
            assert_exact(await collect(b, key), expected)
        for hub in (a, b):
            await assert_healthy(hub)
    # One round per call: 6 arguments per stream written, 5 besides (EVALSHA, sha,
    # key count, retention, notification bound).
    writes = [(arguments - 5) // 6 for arguments in calls]
    assert sum(writes) >= count
    assert len(calls) >= count * backlog // a.config.max_round_events
    assert max(writes) <= a.config.max_round_events // backlog + 1


async def register_all(hub: StreamHub, keys: list[str]) -> list[Producer]:
    registered: dict[str, Producer] = {}

    async def one(key: str) -> None:
        registered[key], _ = await hub.register(key)

    async with anyio.create_task_group() as group:
        for key in keys:
            group.start_soon(one, key)
    return [registered[key] for key in keys]


async def publish_to_all(producers: list[Producer], values: list[str]) -> None:
    for producer in producers:
        await publish(producer, values)


@pytest.mark.slow
async def test_a_burst_of_large_events_keeps_the_pubsub_connection(
    redis_server: RedisServer,
) -> None:
    """256 events of 1 MiB published at once: notifications carry only the seq range
    of writes that large, so Redis never drops the instance's Pub/Sub connection for
    exceeding its output buffer limit (32 MiB for Pub/Sub clients), and the readers
    elsewhere read the data from the stream."""
    size, count = 1024 * 1024, 256
    values = [f"{i:04d}".ljust(size, "x") for i in range(count)]
    options: dict[str, Any] = {"max_event_bytes": 2 * size, "max_bytes": 2 * size * count}
    options["replay_batch"] = 16
    options["lease_ttl_s"] = 10.0  # renewals queue in Redis behind rounds of 4 MiB
    async with two_hubs(redis_server.url, **options) as (a, b):
        producer, _ = await a.register("chat:burst")
        async with readers((a, "chat:burst"), (b, "chat:burst"), timeout_s=60) as found:
            connections = await faults.pubsub_client_ids(redis_server)
            assert len(connections) == 2
            await publish(producer, values)
            await found[1].wait_for_seq(count)
            assert await faults.pubsub_client_ids(redis_server) == connections
            assert await producer.close() == "done"
        encoded = [json.dumps(value) for value in values]
        for reader in found:
            assert [e.data for e in reader.events[:-1]] == encoded
            assert [e.seq for e in reader.events] == list(range(1, count + 2))
            assert reader.events[-1].event == "done"
        for hub in (a, b):
            await assert_healthy(hub)
    assert "output buffer limits" not in redis_server.logs()
