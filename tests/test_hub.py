"""The programmatic API on both backends: register, publish, subscribe, cancel, fencing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_streamhub import (
    Event,
    HubNotStartedError,
    InvalidCursorError,
    ProducerStoppedError,
    SessionBusyError,
    SessionNotFoundError,
    StaleGenerationError,
    StreamError,
    StreamEvent,
    StreamHub,
    SubscriberLaggedError,
)
from fastapi_streamhub._producer import Producer
from fastapi_streamhub._runner import drive
from fastapi_streamhub.backends import EventBatch
from tests.support.streams import collect

pytestmark = pytest.mark.anyio

_keys = itertools.count()


def fresh_key() -> str:
    return f"chat:{next(_keys)}"


async def drain(iterator: AsyncIterator[list[StreamEvent]]) -> None:
    async for _ in iterator:
        pass


def values(events: list[StreamEvent]) -> list[object]:
    return [e.value for e in events if e.event is None]


async def test_replay_then_live_is_exact_and_in_order(hub: StreamHub) -> None:
    key = fresh_key()
    producer, created = await hub.register(key)
    assert created
    for i in range(50):
        await producer.publish(f"t{i}")
    await producer.flush()
    received: list[StreamEvent] = []

    async def follow() -> None:
        received.extend(await collect(hub, key, after=f"{producer.generation}:20"))

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        for i in range(50, 100):
            await producer.publish(f"t{i}")
            if i % 10 == 0:
                await anyio.lowlevel.checkpoint()
        await producer.close()
    assert values(received) == [f"t{i}" for i in range(20, 100)]
    assert [e.seq for e in received] == list(range(21, 102))
    assert received[-1].event == "done"


async def test_register_twice_returns_the_running_producer(hub: StreamHub) -> None:
    key = fresh_key()
    first, created = await hub.register(key)
    again, created_again = await hub.register(key)
    assert (created, created_again) == (True, False)
    assert again is first
    await first.close()
    third, created_third = await hub.register(key)
    assert created_third and third.generation != first.generation


async def test_named_events_metadata_and_done(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish({"role": "assistant"})
    await producer.publish(Event("tool_call", {"name": "search", "args": [1, 2]}))
    await producer.set_metadata({"model": "sim"})
    await producer.set_metadata({"usage": {"tokens": 2}})
    assert await producer.close() == "done"
    got = await collect(hub, key)
    assert [(e.event, e.value) for e in got] == [
        (None, {"role": "assistant"}),
        ("tool_call", {"name": "search", "args": [1, 2]}),
        ("done", {"model": "sim", "usage": {"tokens": 2}}),
    ]
    status = await hub.status(key)
    assert status is not None
    assert (status.status, status.last_seq, status.metadata["model"]) == ("done", 3, "sim")


async def test_cursor_of_an_older_generation_gets_reset(hub: StreamHub) -> None:
    key = fresh_key()
    old, _ = await hub.register(key)
    await old.publish("old")
    await old.close()
    new, _ = await hub.register(key)
    await new.publish("new")
    await new.close()
    got = await collect(hub, key, after=f"{old.generation}:1")
    assert [(e.id, e.event) for e in got] == [
        (f"{new.generation}:0", "reset"),
        (f"{new.generation}:1", None),
        (f"{new.generation}:2", "done"),
    ]
    assert got[0].value == {"generation": new.generation}


async def test_terminal_cursor_is_exhausted_a_lost_one_reset_and_bad_ones_refused(
    hub: StreamHub,
) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("a")
    await producer.close()
    finished = hub.subscribe(key, after=f"{producer.generation}:2")
    assert (await finished.open()).exhausted
    assert [e async for e in finished] == []
    ahead = [(e.seq, e.event) async for e in hub.subscribe(key, after=f"{producer.generation}:3")]
    assert ahead == [(0, "reset"), (1, None), (2, "done")], "a cursor storage lost is reset"
    for bad in ["", "nocolon", "g:-1", "g:01", "g:1.5", "a b:1", "g:" + "9" * 19, "x" * 70 + ":1"]:
        with pytest.raises(InvalidCursorError):
            hub.subscribe(key, after=bad)
    with pytest.raises(SessionNotFoundError):
        await hub.subscribe(fresh_key()).open()


async def test_cancel_stops_the_generator_and_stores_cancelled(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    started, cleaned_up = anyio.Event(), anyio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                started.set()
                await anyio.sleep(0.01)
        finally:
            cleaned_up.set()

    hub.spawn(producer, lambda: drive(producer, endless()))
    with anyio.fail_after(5):
        await started.wait()
    result = await hub.cancel(key, wait=5)
    assert result is not None and result.cancelled and result.stopped
    assert result.status.status == "cancelled"
    assert cleaned_up.is_set()
    assert await producer.wait() == "cancelled"
    got = await collect(hub, key)
    assert got[-1].event == "cancelled" and all(e.value == "tick" for e in got[:-1])
    again = await hub.cancel(key)
    assert again is not None and not again.cancelled
    assert await hub.cancel(fresh_key()) is None


async def test_taken_over_producer_is_refused_and_stopped(
    hub: StreamHub, make_hub: Callable[..., StreamHub]
) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("mine")
    stopped = anyio.Event()

    async def generate() -> AsyncIterator[str]:
        try:
            while True:
                yield "stale?"
                await anyio.sleep(0.01)
        finally:
            stopped.set()

    await hub.backend.remove(key)
    usurper, created = await _claim_elsewhere(hub, key)
    assert created
    hub.spawn(producer, lambda: drive(producer, generate()))
    with anyio.fail_after(5):
        await stopped.wait()
    assert await producer.wait() == "stale"
    with pytest.raises(StaleGenerationError):
        await producer.publish("refused")
    await usurper.publish("theirs")
    await usurper.close()
    assert [(e.event, e.data) for e in await collect(hub, key)] == [
        (None, '"theirs"'),
        ("done", "{}"),
    ]


async def _claim_elsewhere(hub: StreamHub, key: str) -> tuple[Producer, bool]:
    """Another instance's claim: same storage, a fresh generation."""

    created, state = await hub.backend.claim(
        key, generation="usurper", owner="other", lease_ms=60_000, retention_ms=60_000
    )
    producer = Producer(
        key=key,
        generation=state.generation,
        backend=hub.backend,
        writer=hub._require_writer(),
        fanout=hub._fanout,
        config=hub.config,
        on_finished=_nothing_to_forget,
        on_hint=lambda producer: None,
    )
    return producer, created


async def _nothing_to_forget(producer: Producer) -> None:
    pass


@pytest.mark.parametrize(
    ("raised", "message", "reason"),
    [
        (StreamError("The model is overloaded."), "The model is overloaded.", "failed"),
        (RuntimeError("secret db password in traceback"), "The stream failed.", "failed"),
    ],
)
async def test_a_raising_generator_ends_with_a_safe_error(
    hub: StreamHub, raised: Exception, message: str, reason: str
) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)

    async def failing() -> AsyncIterator[str]:
        yield "partial"
        raise raised

    hub.spawn(producer, lambda: drive(producer, failing()))
    got = await collect(hub, key)
    assert [e.event for e in got] == [None, "error"]
    assert got[-1].value == {"message": message, "reason": reason}
    status = await hub.status(key)
    assert status is not None and status.status == "error"


async def test_unsupported_value_ends_with_error_naming_nothing_internal(
    hub: StreamHub, caplog: pytest.LogCaptureFixture
) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)

    async def odd() -> AsyncIterator[object]:
        yield "fine"
        yield object()

    hub.spawn(producer, lambda: drive(producer, odd()))
    got = await collect(hub, key)
    assert got[-1].event == "error" and got[-1].value["reason"] == "unsupported"
    assert "object" not in got[-1].data
    assert "cannot stream a value of type object" in caplog.text


async def test_event_limit_ends_the_stream_with_error(make_hub: Callable[..., StreamHub]) -> None:
    async with make_hub(max_events=4) as hub:
        producer, _ = await hub.register("limited")
        for i in range(3):
            await producer.publish(i)
        with pytest.raises(ProducerStoppedError):
            await producer.publish(3)
        got = await collect(hub, "limited")
        assert [e.value for e in got[:-1]] == [0, 1, 2]
        assert got[-1].event == "error" and got[-1].value["reason"] == "limit"


async def test_slow_subscriber_is_ended_others_are_not(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("first")
    fast: list[StreamEvent] = []
    async with hub.subscribe(key, max_queue=5) as slow:
        iterator = slow.batches()
        assert [e.value for e in await iterator.__anext__()] == ["first"]

        async def follow() -> None:
            fast.extend(await collect(hub, key))

        async with anyio.create_task_group() as group:
            group.start_soon(follow)
            for i in range(100):
                await producer.publish(i)
                await anyio.lowlevel.checkpoint()
            await producer.close()
        with pytest.raises(SubscriberLaggedError):
            await drain(iterator)
        assert len(slow._queue) <= 5
    assert values(fast) == ["first", *range(100)]


async def test_the_starting_subscription_reads_no_storage_and_misses_nothing(
    hub: StreamHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start response follows its producer from seq 0: no read, even when its reader
    starts only after more events than its queue holds (those come from storage then)."""
    key = fresh_key()
    producer, _ = await hub.register(key)
    reads: list[int] = []
    real_read = hub.backend.read

    async def counting_read(*args: object, **kwargs: object) -> object:
        reads.append(1)
        return await real_read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hub.backend, "read", counting_read)
    quick = hub.subscribe(key).opened_at_start(producer.generation)
    late = hub.subscribe(key, max_queue=8).opened_at_start(producer.generation)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:

            async def read_quickly() -> None:
                async for event in quick:
                    got_quick.append(event)

            got_quick: list[StreamEvent] = []
            group.start_soon(read_quickly)
            for i in range(5):
                await producer.publish(i)
                await producer.flush()
                await anyio.lowlevel.checkpoint()
            assert reads == []
            for i in range(5, 30):
                await producer.publish(i)
            await producer.close()
        got_late = [event async for event in late]
    assert values(got_quick) == list(range(30))
    assert values(got_late) == list(range(30))
    assert [e.seq for e in got_late] == list(range(1, 32))
    assert got_late[-1].event == "done"


async def test_a_notification_repeated_by_a_retried_write_is_sent_once(hub: StreamHub) -> None:
    """A write retried after a lost reply is notified again with the events it had
    already stored; a reader holding both notifications sends each event once."""
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("a")
    await producer.flush()
    generation = producer.generation
    async with hub.subscribe(key) as subscription:
        iterator = subscription.batches()
        assert [e.seq for e in await iterator.__anext__()] == [1]

        def event(seq: int) -> StreamEvent:
            return StreamEvent(generation, seq, None, f'"{seq}"')

        subscription._on_signal(EventBatch([event(2), event(3)]))
        subscription._on_signal(EventBatch([event(2), event(3), event(4)]))
        assert [e.seq for e in await iterator.__anext__()] == [2, 3, 4]
    await producer.close()


async def test_a_start_right_after_the_end_is_a_new_generation(hub: StreamHub) -> None:
    """Once `done` is stored the stream is over, even while its producer is still
    winding up: a start then runs a new generation instead of replaying the old one."""
    key = fresh_key()
    producer, _ = await hub.register(key)
    await producer.publish("old")
    async with anyio.create_task_group() as group:
        group.start_soon(producer.close)
        while producer.stop_reason is None:
            await anyio.lowlevel.checkpoint()
        assert not producer.finished
        again, created = await hub.register(key)
    assert created and again.generation != producer.generation
    assert producer.finished and hub.get(key) is again
    await again.publish("new")
    await again.close()
    assert values(await collect(hub, key)) == ["new"]


async def test_active_and_remove(hub: StreamHub) -> None:
    running, done = fresh_key(), fresh_key()
    await hub.register(running)
    finished, _ = await hub.register(done)
    await finished.close()
    assert await hub.active([running, done, "never"]) == {
        running: True,
        done: False,
        "never": False,
    }
    assert await hub.remove(done) is True
    assert await hub.status(done) is None
    assert await hub.remove(done) is False


async def test_unstarted_hub_says_how_to_start_it() -> None:
    with pytest.raises(HubNotStartedError, match=r"lifespan=hub\.lifespan"):
        await StreamHub().register("k")


async def test_busy_key_on_another_instance(redis_url: str) -> None:
    async with StreamHub.from_url(redis_url) as first, StreamHub.from_url(redis_url) as second:
        producer, _ = await first.register("shared")
        with pytest.raises(SessionBusyError) as busy:
            await second.register("shared")
        assert busy.value.generation == producer.generation


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(chunks=st.lists(st.text(), min_size=1, max_size=8))
async def test_any_text_round_trips_exactly(hub: StreamHub, chunks: list[str]) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    for chunk in chunks:
        await producer.publish(chunk)
    await producer.close()
    got = await collect(hub, key)
    assert values(got) == chunks


async def test_a_generator_that_never_awaits_does_not_starve_its_readers(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    received: list[StreamEvent] = []

    async def flood() -> AsyncIterator[int]:
        for i in range(5000):
            yield i

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: _follow_into(hub, key, received))
        await anyio.lowlevel.checkpoint()
        hub.spawn(producer, lambda: drive(producer, flood()))
    assert values(received) == list(range(5000))
    assert received[-1].event == "done"


async def _follow_into(hub: StreamHub, key: str, into: list[StreamEvent]) -> None:
    into.extend(await collect(hub, key))


async def test_leases_are_renewed_while_the_producer_runs(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(lease_ttl_s=0.3) as hub:
        producer, _ = await hub.register("long")
        received: list[StreamEvent] = []

        async def slow() -> AsyncIterator[str]:
            yield "before"
            await anyio.sleep(1.0)
            yield "after"

        async with anyio.create_task_group() as group:
            group.start_soon(lambda: _follow_into(hub, "long", received))
            hub.spawn(producer, lambda: drive(producer, slow()))
        assert [(e.event, e.data) for e in received] == [
            (None, '"before"'),
            (None, '"after"'),
            ("done", "{}"),
        ]


async def test_a_replay_in_byte_bounded_pages_is_whole(make_hub: Callable[..., StreamHub]) -> None:
    async with make_hub(max_replay_bytes=300, shutdown_grace_s=0.1) as hub:
        key = fresh_key()
        producer, _ = await hub.register(key)
        for i in range(50):
            await producer.publish(f"{i:0100d}")
        await producer.close()
        got = await collect(hub, key)
    assert [e.seq for e in got] == list(range(1, 52))
    assert [e.value for e in got[:-1]] == [f"{i:0100d}" for i in range(50)]
