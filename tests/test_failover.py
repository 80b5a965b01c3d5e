"""A Sentinel failover that loses acknowledged events (issue 9, item 5).

Replication is asynchronous: the primary acknowledges a write before its replica
has it. Here the replica's link is stalled (a frozen TCP proxy between the two),
the producer writes events that the primary acknowledges and every reader sees,
then the primary is killed and Sentinel promotes the replica, which lacks them.
The hubs reach Redis through `redis+sentinel://` and follow the new primary.

- The lost tail is within `failover_tail_events`: the producer still holds it and
  writes it again; readers end with exactly the generator's output.
- More was lost than the producer kept: the generation ends with a stored `error`
  (reason `storage_lost`). What a client sees then:
  * a reader that was following gets the events it saw, then `reset` (id `<g>:0`),
    then the stream as storage now has it, from seq 1, ending with that `error`;
  * a client resuming with a cursor storage lost (`<g>:50` of a stream that now ends
    at 31) gets the same: `reset`, then seq 1.., then the `error`; never a 400;
  * a client resuming with a cursor storage still has gets the rest as usual.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import pytest

from fastapi_streamhub import Producer, ProducerStoppedError, StreamEvent
from tests.support import redis_faults as faults
from tests.support.failover import SentinelFailover
from tests.support.redis_server import RedisServer
from tests.support.sse import read_stream
from tests.support.streams import (
    Reader,
    assert_exact,
    assert_healthy,
    collect,
    readers,
    run_a_new_stream,
    two_hubs,
)
from tests.support.uvicorn_server import UvicornServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.apps.generator_app:create_app"
# A long lease: the producer's instance must keep its key through the failover.
OPTIONS = {"lease_ttl_s": 15.0, "socket_timeout_s": 1.0, "shutdown_grace_s": 0.5}
VALUES = [f"w{i} " for i in range(80)]
SEEN, LOST = 30, 20
"""The replica has the first SEEN events; the next LOST reach only the primary."""


@asynccontextmanager
async def sentinel_setup(
    make_redis_server: Callable[..., RedisServer],
) -> AsyncIterator[SentinelFailover]:
    primary = make_redis_server(extra_args=faults.PRIMARY_ARGS)
    async with SentinelFailover(primary, make_redis_server()) as setup:
        yield setup


async def test_a_lost_tail_within_reach_is_written_again(
    make_redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The producer still holds the lost events (`failover_tail_events`, 256 by default)
    and writes them again: every reader ends with exactly the generator's output."""
    caplog.set_level(logging.WARNING, "fastapi_streamhub")
    async with sentinel_setup(make_redis_server) as setup, two_hubs(setup.url, **OPTIONS) as hubs:
        a, b = hubs
        producer, _ = await a.register("chat:failover")
        async with readers((a, "chat:failover"), (b, "chat:failover")) as found:
            await stall_then_write(setup, producer, found)
            await setup.fail_over()
            for value in VALUES[SEEN + LOST :]:
                await producer.publish(value)
            assert await producer.close() == "done"
        for reader in found:
            assert_exact(reader.events, VALUES)
        assert_exact(await collect(b, "chat:failover"), VALUES)
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-failover")
    assert f"storage lost events after {SEEN} (a failover); writing them again" in caplog.text


async def stall_then_write(
    setup: SentinelFailover, producer: Producer, found: list[Reader]
) -> None:
    """SEEN events replicated, then LOST more that only the primary (and every
    reader) has."""
    for value in VALUES[:SEEN]:
        await producer.publish(value)
    await producer.flush()
    await setup.wait_replica_in_sync()
    setup.stall_replication()
    for value in VALUES[SEEN : SEEN + LOST]:
        await producer.publish(value)
    await producer.flush()
    for reader in found:
        await reader.wait_for_seq(SEEN + LOST)
        assert [e.value for e in reader.events] == VALUES[: SEEN + LOST]


async def test_a_lost_tail_beyond_reach_ends_the_generation_and_resets_cursors(
    make_redis_server: Callable[..., RedisServer],
    make_uvicorn_server: Callable[..., UvicornServer],
) -> None:
    """The producer kept only the last 5 events and 20 were lost: the generation ends
    with a stored `error` (`storage_lost`) that every reader gets after a `reset`, and
    the resume route answers a lost cursor with `reset` and the stream, never 400."""
    key = "gen:lost"  # the key of /gen/lost in the app served below
    options = {**OPTIONS, "failover_tail_events": 5}
    async with sentinel_setup(make_redis_server) as setup, two_hubs(setup.url, **options) as hubs:
        a, b = hubs
        env = {"TEST_REDIS_URL": setup.url}
        server = await anyio.to_thread.run_sync(
            lambda: make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")
        )
        producer, _ = await a.register(key)
        async with readers((a, key), (b, key)) as found:
            await stall_then_write(setup, producer, found)
            await setup.fail_over()
            with suppress(ProducerStoppedError):
                for value in VALUES[SEEN + LOST :]:
                    await producer.publish(value)
            assert await producer.wait() == "failed"
        for reader in found:
            assert_seen_then_reset(reader.events, producer.generation)
        status = await b.status(key)
        assert status is not None and (status.status, status.last_seq) == ("error", SEEN + 1)
        async with server.client() as http:
            behind = f"{producer.generation}:{SEEN + LOST}"
            lost = await read_stream(http, "GET", f"/gen/lost/stream?last_event_id={behind}")
            kept = await read_stream(
                http,
                "GET",
                "/gen/lost/stream",
                headers={"Last-Event-ID": f"{producer.generation}:20"},
            )
        assert (lost.status_code, kept.status_code) == (200, 200)
        assert [(e.event, e.id) for e in lost.events[:2]] == [
            ("reset", f"{producer.generation}:0"),
            ("message", f"{producer.generation}:1"),
        ]
        assert [e.json() for e in lost.events[1:-1]] == VALUES[:SEEN]
        assert [e.json() for e in kept.events[:-1]] == VALUES[20:SEEN]
        for events in (lost.events, kept.events):
            assert (events[-1].event, events[-1].id) == (
                "error",
                f"{producer.generation}:{SEEN + 1}",
            )
            assert events[-1].json() == STORAGE_LOST
        for hub in (a, b):
            await assert_healthy(hub)
        await run_a_new_stream(a, b, "chat:after-failover")


STORAGE_LOST = {"message": "The storage lost part of the stream.", "reason": "storage_lost"}


def assert_seen_then_reset(events: list[StreamEvent], generation: str) -> None:
    """What a reader that followed the stream through the failover got: the events
    it saw, `reset`, the stream from seq 1 as storage has it, the stored `error`."""
    seen = SEEN + LOST
    assert [e.value for e in events[:seen]] == VALUES[:seen]
    assert (events[seen].event, events[seen].id) == ("reset", f"{generation}:0")
    assert_exact(events[seen + 1 :], VALUES[:SEEN], "error")
    assert events[-1].value == STORAGE_LOST
