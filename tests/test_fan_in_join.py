"""Joined sources on every backend (issue 11): a process that did not start a generation
joins it; its events reach readers on every instance in the one order, fenced by its
token, leased on its own, and stopped by a cancel of the generation.

On Redis and Cluster the joining hub is a second instance on the same storage; the
memory backend has one process, so there the owner's hub joins its own generation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from fastapi_streamhub import (
    Event,
    JoinRefusedError,
    NotRunningError,
    ProducerStoppedError,
    SessionNotFoundError,
    StreamHub,
    current_producer,
)
from fastapi_streamhub import _join_wire as wire
from fastapi_streamhub._runner import drive
from tests.support import redis_faults as faults
from tests.support.fan_in import assert_fanned_in, by_source, paced, source_ends
from tests.support.redis_server import RedisServer
from tests.support.streams import collect, stalled, start, two_hubs

pytestmark = pytest.mark.anyio

PLAN = [f"plan {i} " for i in range(8)]
WORK = [f"work {i}" for i in range(10)]


@pytest.fixture
async def hubs(
    make_hub: Callable[..., StreamHub], backend_kind: str
) -> AsyncIterator[tuple[StreamHub, StreamHub]]:
    """(the owner's hub, the joining process's hub)."""
    async with make_hub(lease_ttl_s=2.0) as owner:
        if backend_kind == "memory":
            yield owner, owner
            return
        async with make_hub(lease_ttl_s=2.0) as joiner:
            yield owner, joiner


async def stored(hub: StreamHub, key: str, value: object) -> None:
    """Return once `value` is stored in `key`'s stream (from any source)."""
    with anyio.fail_after(10):
        async with hub.subscribe(key, after=None) as subscription:
            async for event in subscription:
                if event.sourced.value == value:
                    return


async def start_until(hub: StreamHub, key: str, go: anyio.Event) -> None:
    """A generation whose first source writes PLAN, the last half once `go` is set."""

    async def first() -> AsyncGenerator[object, None]:
        async for value in paced(PLAN[:4]):
            yield value
        await go.wait()
        async for value in paced(PLAN[4:]):
            yield value

    await start(hub, key, first())


async def test_a_joined_source_writes_into_the_one_order(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    go = anyio.Event()
    await start_until(owner, "joined", go)
    async with joiner.join("joined", source="worker-3") as joined:
        assert joined.generation
        for value in WORK:
            await joined.publish(value)
        await joined.publish(Event("tool", {"ok": True}))
        go.set()
    assert joined.stop_reason == "done"
    on_owner, on_joiner = await collect(owner, "joined"), await collect(joiner, "joined")
    assert on_owner == on_joiner
    assert_fanned_in(
        on_owner,
        {"main": PLAN, "worker-3": [*WORK, {"ok": True}]},
        {"main": "done", "worker-3": "done"},
    )
    first_of_worker = next(e for e in on_owner if e.source == "worker-3")
    assert first_of_worker.sourced.event == "joined"


async def test_join_fails_clearly_without_a_running_generation(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    with pytest.raises(SessionNotFoundError):
        await joiner.join("nobody", source="w").open()
    producer, _ = await owner.register("ended")
    await producer.close()
    with pytest.raises(NotRunningError):
        await joiner.join("ended", source="w").open()
    with pytest.raises(ValueError, match="source"):
        joiner.join("ended", source="")


async def test_a_taken_name_is_refused_and_the_running_source_goes_on(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    producer, _ = await owner.register("taken")
    search = producer.source("search")
    with pytest.raises(JoinRefusedError):
        await joiner.join("taken", source="search", accept_timeout_s=1.0).open()
    await search.publish("still mine")
    await search.close()
    await producer.close()
    events = await collect(owner, "taken")
    assert by_source(events) == {"search": ["still mine"]}
    assert source_ends(events) == {"search": "done", "main": "done"}


async def test_a_stale_token_is_refused_without_touching_the_others(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    """A post under a token that is not the source's (another join of the same name, a
    retried post of a fenced process) writes nothing; the source itself goes on. A post
    stored twice after a lost reply is taken once."""
    owner, joiner = hubs
    producer, _ = await owner.register("fenced")
    async with joiner.join("fenced", source="w") as joined:
        await joined.publish("mine")
        stale = wire.events("not-the-token", 1, [(None, '"forged"')])
        await owner.backend.post("fenced", kind="source", payload=stale, source="w", max_entries=99)
        await joined.publish("still mine")
        await stored(owner, "fenced", "still mine")
        joined._poster.posted += 1  # the number of a post whose reply was lost, sent again
        twice = wire.events(joined._token, joined._poster.posted, [(None, '"once"')])
        for _ in range(2):
            await joiner.backend.post(
                "fenced", kind="source", payload=twice, source="w", max_entries=99
            )
        await joined.publish("after")
    await producer.close()
    events = await collect(owner, "fenced")
    assert by_source(events)["w"] == ["mine", "still mine", "once", "after"]
    assert source_ends(events) == {"w": "done", "main": "done"}


async def test_a_joined_source_that_stops_renewing_ends_alone_as_producer_lost(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    go = anyio.Event()
    await start_until(owner, "lost", go)
    joined = await joiner.join("lost", source="w", lease_s=0.5).open()
    await joined.publish("before it stalls")
    await stored(owner, "lost", "before it stalls")
    joined._halt()  # this process stalls: no more posts, no heartbeat
    with anyio.fail_after(10):
        async with owner.subscribe("lost") as subscription:
            async for event in subscription:
                if event.source == "w" and event.sourced.terminal:
                    break
    assert event.sourced == (
        "w",
        "error",
        {"message": "The source stopped answering.", "reason": "producer_lost"},
    )
    go.set()
    events = await collect(owner, "lost")
    assert by_source(events)["main"] == PLAN
    assert source_ends(events) == {"w": "error", "main": "done"}
    assert events[-1].event == "done"
    await joined.aclose()


async def test_cancel_reaches_the_joined_source_and_runs_its_finally(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    producer, _ = await owner.register("cancel")
    started, cleaned_up = anyio.Event(), anyio.Event()
    async with joiner.join("cancel", source="w") as joined, anyio.create_task_group() as group:
        group.start_soon(joined.run, stalled(started, cleaned_up))
        with anyio.fail_after(10):
            await started.wait()
        await owner.cancel("cancel")
        with anyio.fail_after(10):
            await cleaned_up.wait()
    assert joined.stop_reason == "generation_cancelled"
    with pytest.raises(ProducerStoppedError):
        await joined.publish("late")
    assert (await collect(owner, "cancel"))[-1].event == "cancelled"
    assert producer.stop_reason == "cancelled"


async def test_ends_with_first_cancels_a_joined_source(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    producer, _ = await owner.register("first")
    producer.ends_with = "first"
    started, cleaned_up = anyio.Event(), anyio.Event()
    async with joiner.join("first", source="w") as joined, anyio.create_task_group() as group:
        group.start_soon(joined.run, stalled(started, cleaned_up))
        with anyio.fail_after(10):
            await started.wait()
        await producer.publish("the answer")
        await producer.close()
        with anyio.fail_after(10):
            await cleaned_up.wait()
    assert joined.stop_reason == "cancelled"
    events = await collect(owner, "first")
    assert source_ends(events) == {"main": "done", "w": "cancelled"}
    assert events[-1].event == "done"


async def test_a_joined_generator_is_fed_like_the_first_source(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    joined_in = anyio.Event()

    async def first() -> AsyncGenerator[object, None]:
        yield "planning"
        current_producer().spawn("local", paced(["l1", "l2"]))
        await joined_in.wait()

    async def failing() -> AsyncGenerator[object, None]:
        yield "w1"
        raise RuntimeError("secret")

    producer, _ = await owner.register("fed")
    owner.spawn(producer, lambda: drive(producer, first()))
    async with joiner.join("fed", source="w") as joined:
        joined_in.set()
        await joined.run(failing())
    events = await collect(owner, "fed")
    assert source_ends(events) == {"main": "done", "local": "done", "w": "error"}
    error = next(e.sourced.value for e in events if e.source == "w" and e.sourced.terminal)
    assert error == {"message": "The stream failed.", "reason": "failed"}


async def test_an_expected_source_keeps_the_generation_open_until_it_joins(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, joiner = hubs
    producer, _ = await owner.register("expected")
    producer.expect("w")
    await producer.publish("handed to a worker")
    closing = anyio.Event()

    async def close_first() -> None:
        await producer.close()
        closing.set()

    async with anyio.create_task_group() as group:
        group.start_soon(close_first)
        await stored(owner, "expected", {})  # the first source's own end
        assert not closing.is_set() and producer.stop_reason is None
        async with joiner.join("expected", source="w") as joined:
            await joined.publish("late but welcome")
    events = await collect(owner, "expected")
    assert_fanned_in(
        events,
        {"main": ["handed to a worker"], "w": ["late but welcome"]},
        {"main": "done", "w": "done"},
    )


async def test_an_expected_source_that_never_joins_ends_as_not_joined(
    hubs: tuple[StreamHub, StreamHub],
) -> None:
    owner, _ = hubs
    producer, _ = await owner.register("never")
    producer.expect("w", within_s=0.3)
    with pytest.raises(ValueError, match="source"):
        producer.expect("w")
    assert await producer.close() == "done"
    events = await collect(owner, "never")
    assert source_ends(events) == {"main": "done", "w": "error"}
    assert events[-2].sourced.value == {
        "message": "The source did not join in time.",
        "reason": "not_joined",
    }


async def test_a_joined_source_retries_while_storage_refuses_and_nothing_repeats(
    redis_server: RedisServer,
) -> None:
    """Redis at `maxmemory` refuses the joined process's posts (and the owner's writes)
    with `OOM`: the posts are retried, and once memory is freed every event arrives once,
    in the order it was published."""
    options: dict[str, Any] = {"lease_ttl_s": 5.0, "shutdown_grace_s": 0.1}
    async with two_hubs(redis_server.url, **options) as (owner, joiner):
        producer, _ = await owner.register("oom")
        async with joiner.join("oom", source="w") as joined:
            await joined.publish("before")
            await stored(owner, "oom", "before")
            refused_before = await faults.error_count(redis_server, "OOM")
            await faults.fill_memory(redis_server)
            for value in WORK:
                await joined.publish(value)
            await faults.wait_for_errors(redis_server, "OOM", more_than=refused_before)
            await faults.free_memory(redis_server)
        await producer.close()
        events = await collect(owner, "oom")
    assert_fanned_in(events, {"w": ["before", *WORK]}, {"w": "done", "main": "done"})
