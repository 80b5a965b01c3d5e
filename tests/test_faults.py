"""Faults survived: Redis frozen, restarted or gone; producers killed, frozen, shut down.

The servers here are the tests' own processes; the pauses are the faults being
injected, never a way to wait for something.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest

from fastapi_streamhub import StreamEvent, StreamHub
from fastapi_streamhub._runner import drive
from tests.apps.generator_app import token
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_events, read_stream
from tests.support.uvicorn_server import UvicornServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.apps.generator_app:create_app"
TOKENS = [f"t{i} " for i in range(300)]


async def follow(hub: StreamHub, key: str, into: list[StreamEvent]) -> None:
    with anyio.fail_after(60):
        async with hub.subscribe(key) as subscription:
            async for event in subscription:
                into.append(event)


async def paced(tokens: list[str], reached: dict[int, anyio.Event]) -> AsyncIterator[str]:
    for index, text in enumerate(tokens):
        if index in reached:
            reached[index].set()
        await anyio.sleep(0.005)
        yield text


def assert_exact(events: list[StreamEvent], tokens: list[str], terminal: str) -> None:
    assert [e.value for e in events[:-1]] == tokens
    assert [e.seq for e in events] == list(range(1, len(tokens) + 2))
    assert events[-1].event == terminal


async def run_through_fault(redis: RedisServer, fault: Callable[[], object]) -> None:
    """Produce on one instance, follow on another and on the producer's own, fault midway."""
    url = redis.url
    options = {"socket_timeout_s": 0.5, "lease_ttl_s": 30.0, "write_deadline_s": 30.0}
    async with StreamHub.from_url(url, **options) as a, StreamHub.from_url(url, **options) as b:
        producer, _ = await a.register("chat:fault")
        halfway = {100: anyio.Event()}
        on_a: list[StreamEvent] = []
        on_b: list[StreamEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(follow, a, "chat:fault", on_a)
            group.start_soon(follow, b, "chat:fault", on_b)
            a.spawn(producer, lambda: drive(producer, paced(TOKENS, halfway)))
            await halfway[100].wait()
            await anyio.to_thread.run_sync(fault)
        late: list[StreamEvent] = []
        await follow(b, "chat:fault", late)
    for events in (on_a, on_b, late):
        assert_exact(events, TOKENS, "done")


def outage(
    down: Callable[[], object], seconds: float, up: Callable[[], object]
) -> Callable[[], None]:
    """The fault, run in a worker thread: take Redis down, keep it down, bring it back."""

    def run() -> None:
        down()
        time.sleep(seconds)
        up()

    return run


async def test_redis_frozen_for_seconds_loses_nothing(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await run_through_fault(redis_server, outage(redis_server.pause, 3, redis_server.resume))
    assert "storage unavailable, retrying" in caplog.text


async def test_redis_restarted_with_aof_loses_nothing(
    make_redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    redis = make_redis_server(appendonly=True)

    await run_through_fault(redis, outage(redis.stop, 1, redis.restart))
    assert "storage unavailable, retrying" in caplog.text
    assert "Pub/Sub connection lost" in caplog.text


async def test_redis_gone_past_the_deadline_cancels_the_producer(
    redis_server: RedisServer,
) -> None:
    options = {"socket_timeout_s": 0.5, "write_deadline_s": 1.0}
    async with StreamHub.from_url(redis_server.url, **options) as hub:
        producer, _ = await hub.register("chat:gone")
        cleaned_up = anyio.Event()
        started = {5: anyio.Event()}

        async def endless() -> AsyncIterator[str]:
            try:
                async for text in paced(TOKENS * 1000, started):
                    yield text
            finally:
                cleaned_up.set()

        received: list[StreamEvent] = []
        async with anyio.create_task_group() as group:
            group.start_soon(follow, hub, "chat:gone", received)
            hub.spawn(producer, lambda: drive(producer, endless()))
            await started[5].wait()
            await anyio.to_thread.run_sync(redis_server.stop)
            with anyio.fail_after(30):
                await cleaned_up.wait()
        assert await producer.wait() == "unavailable"
    assert received[-1].event == "error"
    assert received[-1].value == {
        "message": "The stream's storage is unavailable.",
        "reason": "unavailable",
    }
    assert [e.value for e in received[:-1]] == TOKENS[: len(received) - 1]


def start(
    make_uvicorn_server: Callable[..., UvicornServer], redis: RedisServer, **env: str
) -> UvicornServer:
    env = {"TEST_REDIS_URL": redis.url, "TEST_LEASE_S": "1", **env}
    return make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")


def text(events: list[SSE]) -> str:
    return "".join(e.json() for e in events if e.event == "message")


async def record(http: httpx.AsyncClient, rid: str) -> dict[str, int]:
    return dict((await http.get(f"/debug/runs/{rid}")).json())


async def test_killed_producer_is_reported_lost_then_reclaimed(
    redis_server: RedisServer, make_uvicorn_server: Callable[..., UvicornServer]
) -> None:
    a, b = start(make_uvicorn_server, redis_server), start(make_uvicorn_server, redis_server)
    body = {"count": 1_000_000, "delay_ms": 10}
    async with a.client() as http_a, b.client() as http_b:
        first = await read_events(http_a, "POST", "/gen/k", json=body, limit=3)
        a.kill()
        rest = await read_events(
            http_b, "GET", "/gen/k/stream", headers={"Last-Event-ID": first[-1].id}, timeout_s=15
        )
        assert rest[-1].event == "error"
        assert rest[-1].json() == {
            "message": "The stream's producer was lost.",
            "reason": "producer_lost",
        }
        assert text(first + rest) == "".join(token(i) for i in range(len(first + rest) - 1))
        status = (await http_b.get("/gen/k/status")).json()
        assert status["status"] == "error"
        rerun = await read_events(http_b, "POST", "/gen/k", json={"count": 3})
        assert text(rerun) == token(0) + token(1) + token(2)
        reset = await read_events(
            http_b, "GET", "/gen/k/stream", headers={"Last-Event-ID": first[-1].id}
        )
        assert reset[0].event == "reset"
        assert reset[1:] == rerun


async def test_frozen_producer_is_fenced_out_after_a_takeover(
    redis_server: RedisServer, make_uvicorn_server: Callable[..., UvicornServer]
) -> None:
    a, b = start(make_uvicorn_server, redis_server), start(make_uvicorn_server, redis_server)
    async with a.client() as http_a, b.client() as http_b:
        old = await read_events(
            http_a, "POST", "/gen/k", json={"count": 1_000_000, "delay_ms": 10}, limit=3
        )
        await anyio.to_thread.run_sync(a.pause)
        lost = await read_events(
            http_b, "GET", "/gen/k/stream", headers={"Last-Event-ID": old[-1].id}, timeout_s=15
        )
        assert lost[-1].json()["reason"] == "producer_lost"
        takeover = await read_events(
            http_b, "POST", "/gen/k", json={"count": 200, "delay_ms": 5}, limit=5
        )
        await anyio.to_thread.run_sync(a.resume)

        async def stale_generator_stopped() -> bool:
            return (await record(http_a, "k"))["finally"] == 1

        await eventually(stale_generator_stopped)
        new = await read_events(http_b, "GET", "/gen/k/stream")
    assert new[: len(takeover)] == takeover
    assert text(new) == "".join(token(i) for i in range(200))
    assert [int(e.id.rpartition(":")[2]) for e in new] == list(range(1, 202))


async def test_shutdown_finishes_within_grace_or_ends_streams_truthfully(
    redis_server: RedisServer, make_uvicorn_server: Callable[..., UvicornServer]
) -> None:
    a = start(make_uvicorn_server, redis_server, TEST_GRACE_S="2")
    b = start(make_uvicorn_server, redis_server)
    async with a.client() as http_a, b.client() as http_b:
        await read_events(http_a, "POST", "/gen/short", json={"count": 60, "delay_ms": 10}, limit=1)
        await read_events(
            http_a, "POST", "/gen/long", json={"count": 1_000_000, "delay_ms": 10}, limit=1
        )
        a.stop()
        short = await read_events(http_b, "GET", "/gen/short/stream")
        long = await read_events(http_b, "GET", "/gen/long/stream")
        long_status = (await http_b.get("/gen/long/status")).json()
    assert text(short) == "".join(token(i) for i in range(60))
    assert short[-1].event == "done"
    assert long[-1].event == "error"
    assert long[-1].json() == {
        "message": "The server shut down before the stream finished.",
        "reason": "shutdown",
    }
    assert long_status["status"] == "error"
    assert long_status["producer_running"] is False
    assert "cancelled by shutdown" in a.logs()


async def test_resume_route_on_unknown_and_finished_keys_after_restart(
    redis_server: RedisServer, make_uvicorn_server: Callable[..., UvicornServer]
) -> None:
    a = start(make_uvicorn_server, redis_server)
    async with a.client() as http:
        run = await read_events(http, "POST", "/gen/k", json={"count": 5})
    a.stop()
    a.restart()
    async with a.client() as http:
        again = await read_events(http, "GET", "/gen/k/stream")
        finished = await read_stream(
            http, "GET", "/gen/k/stream", headers={"Last-Event-ID": run[-1].id}
        )
    assert again == run
    assert finished.status_code == 204


async def test_readers_elsewhere_end_with_an_error_when_redis_stays_away(
    redis_server: RedisServer,
) -> None:
    options = {"socket_timeout_s": 0.5, "write_deadline_s": 1.0, "lease_ttl_s": 1.0}
    async with (
        StreamHub.from_url(redis_server.url, **options) as producing,
        StreamHub.from_url(redis_server.url, **options) as reading,
    ):
        producer, _ = await producing.register("chat:away")
        await producer.publish("before")
        await producer.flush()
        received: list[StreamEvent] = []
        first = anyio.Event()

        async def read() -> None:
            with anyio.fail_after(30):
                async with reading.subscribe("chat:away") as subscription:
                    async for event in subscription:
                        received.append(event)
                        first.set()

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await first.wait()
            await anyio.to_thread.run_sync(redis_server.stop)
    assert [e.value for e in received] == [
        "before",
        {"message": "The stream's storage is unavailable.", "reason": "unavailable"},
    ]
    assert received[-1].id == received[0].id
