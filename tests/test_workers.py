"""Streams produced by a real Taskiq worker process and served by two uvicorn instances,
all on one real Redis (`tests/apps/worker_app.py`).

The worker records in Redis each start and each `finally` of its generator, and what
each delivery of a job came to, so these tests see the worker's side directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import anyio
import pytest
from redis.asyncio import Redis

from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_events, read_stream
from tests.support.taskiq_worker import TaskiqWorker
from tests.support.uvicorn_server import UvicornServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.apps.worker_app:app"
BROKER = "tests.apps.worker_app:broker"


@dataclass
class Deployment:
    redis: RedisServer
    a: UvicornServer
    b: UvicornServer
    env: dict[str, str]
    stack: ExitStack

    def worker(self, **env: str) -> TaskiqWorker:
        worker = self.stack.enter_context(TaskiqWorker(BROKER, env={**self.env, **env}))
        self.stack.callback(lambda: print(f"----- worker -----\n{worker.logs()[-6000:]}"))
        return worker

    def store(self) -> Redis:
        return self.redis.client()


@pytest.fixture
def deploy(redis_server: RedisServer) -> Iterator[Callable[..., Deployment]]:
    """`deploy(**env)`: two web instances on `redis_server`; workers come separately."""
    with ExitStack() as stack:

        def make(**env: str) -> Deployment:
            full = {"TEST_REDIS_URL": redis_server.url, **env}
            a, b = (stack.enter_context(UvicornServer(APP, env=full)) for _ in "ab")
            stack.callback(lambda: print(f"----- A -----\n{a.logs()[-4000:]}"))
            stack.callback(lambda: print(f"----- B -----\n{b.logs()[-4000:]}"))
            return Deployment(redis_server, a, b, full, stack)

        yield make


def tokens(count: int) -> list[str]:
    return [f"tok{i} " for i in range(count)]


def seqs(events: list[SSE]) -> list[int]:
    return [int(e.id.rsplit(":", 1)[1]) for e in events]


async def recorded(deployment: Deployment, name: str) -> list[str]:
    async with deployment.store() as store:
        return list(await store.lrange(name, 0, -1))


async def test_a_post_on_a_is_served_from_the_worker_and_resumed_on_b_exactly(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy()
    deployment.worker()
    async with deployment.a.client() as a, deployment.b.client() as b:
        head = await read_events(a, "POST", "/gen/1", json={"count": 40, "delay_ms": 20}, limit=5)
        generation = head[0].id.split(":")[0]
        tail = await read_events(b, "GET", "/gen/1/stream", headers={"Last-Event-ID": head[-1].id})
    events = head + tail
    assert [e.json() for e in events[:-1]] == tokens(40)
    assert (events[-1].event, events[-1].json()) == ("done", {"tokens": 40})
    assert seqs(events) == list(range(1, 42))
    assert {e.id.split(":")[0] for e in events} == {generation}
    assert await recorded(deployment, "worker:1") == [
        f"start {generation}",
        f"finally {generation}",
    ]


async def test_cancel_from_b_stops_the_workers_generator(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy()
    deployment.worker()
    async with deployment.a.client() as a, deployment.b.client() as b:
        spec = {"count": 10_000, "delay_ms": 20}
        head = await read_events(a, "POST", "/gen/2", json=spec, limit=3)
        generation = head[0].id.split(":")[0]
        cancelled = (await b.post("/gen/2/cancel")).json()
        assert (cancelled["cancelled"], cancelled["stopped"]) == (True, True)
        rest = await read_events(a, "GET", "/gen/2/stream", headers={"Last-Event-ID": head[-1].id})
    assert [e.json() for e in head] == tokens(3)
    assert rest[-1].event == "cancelled"
    assert [e.json() for e in rest[:-1]] == tokens(3 + len(rest) - 1)[3:]
    assert await recorded(deployment, "worker:2") == [
        f"start {generation}",
        f"finally {generation}",
    ]

    async def ended() -> bool:
        return await recorded(deployment, "outcomes:2") == ["cancelled"]

    await eventually(ended, timeout_s=10)


async def test_a_killed_worker_ends_its_stream_and_a_new_post_starts_afresh(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy()
    first = deployment.worker()
    async with deployment.a.client() as a, deployment.b.client() as b:
        spec = {"count": 10_000, "delay_ms": 20}
        head = await read_events(a, "POST", "/gen/3", json=spec, limit=3)
        generation = head[0].id.split(":")[0]
        await anyio.to_thread.run_sync(first.kill)
        rest = await read_events(b, "GET", "/gen/3/stream", headers={"Last-Event-ID": head[-1].id})
        assert (rest[-1].event, rest[-1].json()["reason"]) == ("error", "producer_lost")
        assert seqs(head + rest) == list(range(1, len(head + rest) + 1))

        # A new worker takes the dead worker's unacknowledged job again (Taskiq's Redis
        # broker claims idle jobs after it received new ones), and refuses it.
        await anyio.to_thread.run_sync(lambda: deployment.worker(TEST_REDELIVER_MS="300"))
        again = await read_events(b, "POST", "/gen/3", json={"count": 5, "delay_ms": 0})

        async def refused() -> bool:
            return sorted(await recorded(deployment, "outcomes:3")) == ["done", "stale"]

        await eventually(refused, timeout_s=15)
    fresh = again[0].id.split(":")[0]
    assert fresh != generation
    assert [e.json() for e in again[:-1]] == tokens(5) and again[-1].event == "done"
    assert await recorded(deployment, "worker:3") == [
        f"start {generation}",
        f"start {fresh}",
        f"finally {fresh}",
    ]


async def test_the_same_job_delivered_twice_writes_once(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy()
    deployment.worker()
    async with deployment.a.client() as a, deployment.b.client() as b:
        head = await read_events(a, "POST", "/gen/4", json={"count": 50, "delay_ms": 20}, limit=2)
        redelivered = (await a.post("/debug/redeliver/4")).json()
        assert redelivered["generation"] == head[0].id.split(":")[0]

        async def refused() -> bool:
            return await recorded(deployment, "outcomes:4") == ["adopted"]

        await eventually(refused, timeout_s=10)
        events = await read_events(b, "GET", "/gen/4/stream", headers={"Last-Event-ID": "x:0"})
    assert events[0].event == "reset"
    assert [e.json() for e in events[1:-1]] == tokens(50) and events[-1].event == "done"
    assert seqs(events[1:]) == list(range(1, 52))
    assert len(await recorded(deployment, "worker:4")) == 2  # one start, one finally

    async def both() -> bool:
        return await recorded(deployment, "outcomes:4") == ["adopted", "done"]

    await eventually(both, timeout_s=10)


async def test_without_a_worker_the_post_ends_with_not_started(
    deploy: Callable[..., Deployment],
) -> None:
    deployment = deploy(TEST_START_TIMEOUT_S="1")
    async with deployment.a.client() as a, deployment.b.client() as b:
        events = await read_events(a, "POST", "/gen/5", json={"count": 3}, timeout_s=15)
        status = (await b.get("/gen/5/status")).json()
        replay = await read_stream(b, "GET", "/gen/5/stream")
    assert [(e.event, e.json()) for e in events] == [
        ("error", {"message": "No worker started the stream in time.", "reason": "not_started"})
    ]
    assert (status["status"], status["pending"], status["producer_running"]) == (
        "error",
        False,
        False,
    )
    assert [e.id for e in replay.events] == [events[0].id]
