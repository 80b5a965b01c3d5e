"""Steering through the hub: messages reach the running generator once each, in order,
on every backend, and the stream records each as a `steer` event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import anyio
import pytest

from fastapi_streamhub import (
    MessageTooLargeError,
    NotRunningError,
    SessionNotFoundError,
    SteeringMessage,
    StreamEvent,
    StreamHub,
    StreamJob,
    current_producer,
)
from fastapi_streamhub._runner import drive

pytestmark = pytest.mark.anyio


async def replay(hub: StreamHub, key: str) -> list[StreamEvent]:
    with anyio.fail_after(10):
        return [event async for event in hub.subscribe(key)]


async def test_messages_reach_the_generator_once_each_in_order(hub: StreamHub) -> None:
    producer, _ = await hub.register("k")
    early = await hub.steer("k", {"say": "before the generator looked"})
    seen: list[SteeringMessage] = []
    go = anyio.Event()

    async def generate() -> AsyncIterator[str]:
        me = current_producer()
        await go.wait()
        async for message in me.messages():
            seen.append(message)
            yield f"ack {message.data['say']}"
            if message.data["say"] == "stop":
                return

    hub.spawn(producer, lambda: drive(producer, generate()))
    go.set()
    later = [await hub.steer("k", {"say": word}, source="tester") for word in ("a", "b", "stop")]
    assert await producer.wait() == "done"
    assert [m.data["say"] for m in seen] == ["before the generator looked", "a", "b", "stop"]
    assert [m.id for m in seen] == [early.id, *(s.id for s in later)]
    assert [m.source for m in seen] == ["api", "tester", "tester", "tester"]
    assert {early.generation, *(s.generation for s in later)} == {producer.generation}
    events = await replay(hub, "k")
    steers = [json.loads(e.data) for e in events if e.event == "steer"]
    assert steers == [
        {"id": early.id, "source": "api", "message": {"say": "before the generator looked"}},
        *(
            {"id": s.id, "source": "tester", "message": {"say": w}}
            for s, w in zip(later[:2], "ab", strict=True)
        ),
        {"id": later[2].id, "source": "tester", "message": {"say": "stop"}},
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    acks = [json.loads(e.data) for e in events if e.event is None]
    assert acks == ["ack before the generator looked", "ack a", "ack b", "ack stop"]


async def test_a_steer_event_comes_before_what_the_generator_answered_to_it(
    hub: StreamHub,
) -> None:
    producer, _ = await hub.register("k")
    written = {"long": anyio.Event(), "short": anyio.Event()}

    async def generate() -> AsyncIterator[str]:
        me = current_producer()
        style, count = "long", 0
        while True:
            for message in me.take_messages():
                style, count = message.data, 0
                if style == "end":
                    return
            count += 1
            yield style
            if count == 3:
                written[style].set()
            await anyio.sleep(0.005)

    hub.spawn(producer, lambda: drive(producer, generate()))
    with anyio.fail_after(10):
        await written["long"].wait()
        await hub.steer("k", "short")
        await written["short"].wait()
    await hub.steer("k", "end")
    assert await producer.wait() == "done"
    names = [(e.event, json.loads(e.data)) for e in await replay(hub, "k")]
    steers = [i for i, (name, _) in enumerate(names) if name == "steer"]
    assert [names[i][1]["message"] for i in steers] == ["short", "end"]
    short = steers[0]
    assert {data for name, data in names[:short] if name is None} == {"long"}
    assert {data for name, data in names[short + 1 : steers[1]] if name is None} == {"short"}
    assert names[steers[1] + 1 :] == [("done", {})]


async def test_steering_an_unknown_stream_is_not_found(hub: StreamHub) -> None:
    with pytest.raises(SessionNotFoundError):
        await hub.steer("nobody", "hello")


async def test_a_message_after_the_end_is_refused_not_kept_for_the_next_answer(
    hub: StreamHub,
) -> None:
    first, _ = await hub.register("k")
    await first.close()
    with pytest.raises(NotRunningError):
        await hub.steer("k", "too late")
    second, _ = await hub.register("k")
    await hub.steer("k", "for the second")
    with anyio.fail_after(10):
        messages = second.messages()
        message = await messages.__anext__()
    assert message.data == "for the second"
    assert second.take_messages() == []
    await second.close()


async def test_oversized_or_unencodable_messages_are_refused(
    hub: StreamHub,
) -> None:
    producer, _ = await hub.register("k")
    with pytest.raises(MessageTooLargeError):
        await hub.steer("k", "x" * hub.config.max_message_bytes)
    with pytest.raises(TypeError):
        await hub.steer("k", {"not json": object()})
    await producer.close()
    assert [e.event for e in await replay(hub, "k")] == ["done"]


async def test_a_message_sent_before_a_worker_adopts_the_job_reaches_it(
    make_hub: Callable[..., StreamHub], backend_kind: str
) -> None:
    """A stream handed to a job queue runs in a worker; a steer sent to the web side while
    the job still waits in the queue is delivered to the worker's generator."""
    async with AsyncExitStack() as stack:
        web = await stack.enter_async_context(make_hub(lease_ttl_s=1.0))
        worker = web
        if backend_kind != "memory":
            worker = await stack.enter_async_context(make_hub(lease_ttl_s=1.0))
        jobs: list[StreamJob] = []

        async def send(job: StreamJob) -> None:
            jobs.append(job)

        job = await web.dispatch("chat:1", {}, send=send)
        steered = await web.steer("chat:1", {"text": "in French"})
        assert steered.generation == job.generation

        async def answer() -> AsyncIterator[str]:
            async for message in current_producer().messages():
                yield f"ok: {message.data['text']} ({message.source})"
                return

        with anyio.fail_after(10):
            outcome = await worker.run(jobs[0], answer())
        assert (outcome.adopted, outcome.reason) == (True, "done")
        events = await replay(web, "chat:1")
    assert [(e.event, json.loads(e.data)) for e in events] == [
        ("steer", {"id": steered.id, "source": "api", "message": {"text": "in French"}}),
        (None, "ok: in French (api)"),
        ("done", {}),
    ]
