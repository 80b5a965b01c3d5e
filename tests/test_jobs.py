"""Streams produced by a worker: `hub.dispatch` on the serving side, `hub.run` on the
worker's, on every backend. Two hubs on one storage stand for the two processes (the
memory backend: one hub plays both parts); `tests/test_workers.py` runs real ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from fastapi_streamhub import (
    Event,
    JobOutcome,
    SessionBusyError,
    StreamError,
    StreamEvent,
    StreamHub,
    StreamJob,
    current_producer,
)
from tests.support._process import REPO_ROOT
from tests.support.polling import eventually

pytestmark = pytest.mark.anyio


class Queue:
    """The job queue, as `send` sees it."""

    def __init__(self) -> None:
        self.jobs: list[StreamJob] = []

    async def send(self, job: StreamJob) -> None:
        self.jobs.append(job)


@pytest.fixture
async def hubs(
    make_hub: Callable[..., StreamHub], backend_kind: str
) -> AsyncIterator[tuple[StreamHub, StreamHub]]:
    """(web, worker): two started hubs on the same storage."""
    options: dict[str, Any] = {"lease_ttl_s": 1.0, "start_timeout_s": 1.0}
    async with AsyncExitStack() as stack:
        web = await stack.enter_async_context(make_hub(**options))
        if backend_kind == "memory":
            yield web, web
            return
        worker = await stack.enter_async_context(make_hub(**options))
        yield web, worker


async def collect(hub: StreamHub, key: str, after: str) -> list[StreamEvent]:
    with anyio.fail_after(10):
        async with hub.subscribe(key, after=after) as subscription:
            return [event async for event in subscription]


def values(events: list[StreamEvent]) -> list[tuple[str | None, Any]]:
    return [(event.event, event.value) for event in events]


async def test_the_worker_produces_what_the_web_side_serves(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    queue = Queue()
    job = await web.dispatch("chat:1", {"prompt": "hi", "n": 2}, send=queue.send)
    assert queue.jobs == [job] and job.params == {"prompt": "hi", "n": 2}
    status = await web.status("chat:1")
    assert status is not None and status.pending and not status.producer_running

    async def answer(prompt: str, n: int) -> AsyncIterator[object]:
        yield Event("prompt", {"text": prompt})
        for i in range(n):
            yield f"tok{i}"
        await current_producer().set_metadata({"tokens": n})

    async with anyio.create_task_group() as group:
        outcomes: list[JobOutcome] = []

        async def work() -> None:
            outcomes.append(await worker.run(job.as_dict(), answer(**job.params)))

        group.start_soon(work)
        events = await collect(web, "chat:1", f"{job.generation}:0")
    assert values(events) == [
        ("prompt", {"text": "hi"}),
        (None, "tok0"),
        (None, "tok1"),
        ("done", {"tokens": 2}),
    ]
    assert {e.generation for e in events} == {job.generation}
    assert outcomes == [JobOutcome(True, "done")]
    status = await web.status("chat:1")
    assert status is not None and (status.status, status.pending) == ("done", False)


async def test_a_second_delivery_of_the_job_writes_nothing(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send)
    started = anyio.Event()
    release = anyio.Event()
    runs: list[str] = []

    async def slow() -> AsyncIterator[str]:
        runs.append("first")
        yield "one"
        started.set()
        await release.wait()
        yield "two"

    async def duplicate() -> AsyncIterator[str]:
        runs.append("duplicate")
        yield "never"

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run, job, slow)
        with anyio.fail_after(5):
            await started.wait()
        assert await web.run(job, duplicate) == JobOutcome(False, "adopted")
        release.set()
    assert runs == ["first"]
    assert values(await collect(web, "k", f"{job.generation}:0")) == [
        (None, "one"),
        (None, "two"),
        ("done", {}),
    ]
    assert await worker.run(job, duplicate) == JobOutcome(False, "done")
    assert runs == ["first"]


async def test_cancel_stops_the_workers_generator(hubs: tuple[StreamHub, StreamHub]) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send)
    yielded = anyio.Event()
    closed: list[str] = []

    async def endless() -> AsyncIterator[str]:
        try:
            yield "first"
            yielded.set()
            await anyio.sleep_forever()
            yield "never"
        finally:
            closed.append("finally")

    async with anyio.create_task_group() as group:
        outcomes: list[JobOutcome] = []

        async def work() -> None:
            outcomes.append(await worker.run(job, endless))

        group.start_soon(work)
        with anyio.fail_after(5):
            await yielded.wait()
        result = await web.cancel("k", wait=5)
    assert result is not None and result.cancelled and result.stopped
    assert closed == ["finally"]
    assert outcomes == [JobOutcome(True, "cancelled")]
    assert values(await collect(web, "k", f"{job.generation}:0")) == [
        (None, "first"),
        ("cancelled", {"reason": "cancelled"}),
    ]


async def test_a_job_no_worker_takes_ends_with_not_started(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send, start_timeout_s=0.3)
    with pytest.raises(SessionBusyError):
        await web.dispatch("k", send=Queue().send)
    events = await collect(web, "k", f"{job.generation}:0")
    assert values(events) == [
        ("error", {"message": "No worker started the stream in time.", "reason": "not_started"})
    ]
    status = await web.status("k")
    assert status is not None and (status.status, status.pending) == ("error", False)

    async def never() -> AsyncIterator[str]:
        yield "never"

    assert await worker.run(job, never()) == JobOutcome(False, "error")
    page = await web.backend.read("k", generation=job.generation, after_seq=0, limit=10)
    assert page is not None and len(page.events) == 1


async def test_a_late_worker_ends_the_stream_itself(hubs: tuple[StreamHub, StreamHub]) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send, start_timeout_s=0.2)

    async def lapsed() -> bool:
        (state,) = await web.backend.states(["k"])
        return state is not None and state.lease_expired

    await eventually(lapsed, timeout_s=5)

    async def never() -> AsyncIterator[str]:
        yield "never"

    assert await worker.run(job, never) == JobOutcome(False, "expired")
    status = await web.status("k")
    assert status is not None and status.status == "error"
    page = await web.backend.read("k", generation=job.generation, after_seq=0, limit=10)
    assert page is not None and [e.value["reason"] for e in page.events] == ["not_started"]


async def test_a_failed_send_ends_the_stream_at_once(hubs: tuple[StreamHub, StreamHub]) -> None:
    web, _ = hubs

    async def broken(job: StreamJob) -> None:
        raise ConnectionError("the queue is down")

    with pytest.raises(ConnectionError):
        await web.dispatch("k", send=broken)
    status = await web.status("k")
    assert status is not None and status.status == "error"
    page = await web.backend.read("k", generation=status.generation, after_seq=0, limit=10)
    assert page is not None
    assert [e.value for e in page.events] == [
        {"message": "The stream could not be handed to a worker.", "reason": "not_sent"}
    ]
    with pytest.raises(TypeError, match="JSON"):
        await web.dispatch("other", {"when": object()}, send=Queue().send)


async def test_stream_errors_reach_readers_as_from_the_decorator(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send)

    async def failing() -> AsyncIterator[str]:
        yield "partial"
        raise StreamError("The model is overloaded.")

    assert await worker.run(job, failing) == JobOutcome(True, "error")
    assert values(await collect(web, "k", f"{job.generation}:0")) == [
        (None, "partial"),
        ("error", {"message": "The model is overloaded.", "reason": "failed"}),
    ]


async def test_a_job_given_up_by_its_queue_ends_for_readers(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send)
    closed: list[str] = []

    async def endless() -> AsyncIterator[str]:
        try:
            yield "first"
            await anyio.sleep_forever()
            yield "never"
        finally:
            closed.append("finally")

    with anyio.move_on_after(0.5):
        await worker.run(job, endless)
    assert closed == ["finally"]
    assert values(await collect(web, "k", f"{job.generation}:0")) == [
        (None, "first"),
        (
            "error",
            {"message": "The worker stopped before the stream finished.", "reason": "interrupted"},
        ),
    ]


def test_jobs_travel_as_plain_data() -> None:
    job = StreamJob("chat:1", "gen", {"prompt": "hi"})
    assert StreamJob.from_dict(job.as_dict()) == job
    for bad in ({}, {"key": "k", "generation": "g", "params": []}, {"key": 1, "generation": "g"}):
        with pytest.raises(ValueError, match="stream job"):
            StreamJob.from_dict(bad)


async def test_a_stream_that_is_not_a_generator_ends_with_an_error(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    web, worker = hubs
    job = await web.dispatch("k", send=Queue().send)

    def not_a_generator() -> Any:
        return ["a list"]

    assert await worker.run(job, not_a_generator) == JobOutcome(True, "error")
    assert values(await collect(web, "k", f"{job.generation}:0")) == [
        ("error", {"message": "The stream failed.", "reason": "failed"})
    ]


def test_the_core_does_not_import_the_queue() -> None:
    code = "import sys, fastapi_streamhub; print('taskiq' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "False"
