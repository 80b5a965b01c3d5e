"""What becomes of a generation around its end, on every backend: its result, its
compaction (and a reader replaying across it), its finish hook, abandonment, per-key
retention, and what cancel and remove answer."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from fastapi_streamhub import (
    Event,
    StreamEvent,
    StreamHub,
    StreamPolicy,
    StreamResult,
)
from fastapi_streamhub._config import HubConfig, HubOptions
from fastapi_streamhub._producer import Producer
from tests.support.polling import eventually
from tests.support.streams import collect

pytestmark = pytest.mark.anyio

_keys = itertools.count()


def fresh_key() -> str:
    return f"fin:{next(_keys)}"


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.value for e in events if e.event is None and isinstance(e.value, str))


async def produce(hub: StreamHub, key: str, chunks: list[object], **options: Any) -> Producer:
    producer, created = await hub.register(key, **options)
    assert created
    for chunk in chunks:
        await producer.publish(chunk)
    await producer.flush()
    return producer


async def compacted(hub: StreamHub, key: str) -> bool:
    details = await hub.backend.details(key)
    return details is not None and details.compacted


def test_every_setting_can_be_passed_to_the_hub() -> None:
    settable = {name for name, f in HubConfig.__dataclass_fields__.items() if f.init}
    assert set(HubOptions.__annotations__) == settable
    with pytest.raises(ValueError, match="compact_after_s"):
        HubConfig(compact_after_s=-1)
    with pytest.raises(ValueError, match="abandon_after_s"):
        HubConfig(abandon_after_s=0)
    assert HubConfig(compact=False, compact_after_s=0).compact is False


async def test_the_result_while_running_and_after_the_end(hub: StreamHub) -> None:
    key = fresh_key()
    producer = await produce(hub, key, [Event("prompt", {"text": "hi"}), "Hel", "lo", {"n": 1}])
    await producer.set_metadata({"usage": {"tokens": 2}})
    await producer.flush()
    running = await hub.result(key)
    assert running is not None
    generation = producer.generation
    assert (running.status, running.text, running.end, running.ended_at) == (
        "running",
        "Hello",
        None,
        None,
    )
    assert [(e.seq, e.event, e.data) for e in running.events] == [
        (1, "prompt", {"text": "hi"}),
        (4, None, {"n": 1}),
    ]
    assert running.last_event_id == f"{generation}:4"
    await producer.publish("!")
    await producer.close()
    done = await hub.result(key)
    assert done is not None and done.generation == generation
    assert (done.status, done.text, done.usage) == ("done", "Hello!", {"tokens": 2})
    assert done.end == {"usage": {"tokens": 2}}
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert done.last_event_id == f"{generation}:6"
    assert await hub.result(key, generation=generation) == done
    assert await hub.compact(key) is True
    assert await hub.result(key) == done
    assert await hub.result(key, generation="another") is None
    assert await hub.result("never-started") is None


async def test_failed_and_cancelled_results_say_how_they_ended(hub: StreamHub) -> None:
    failed = fresh_key()
    producer = await produce(hub, failed, ["par", "tial"])
    await producer.fail("The model is down.", reason="upstream")
    result = await hub.result(failed)
    assert result is not None
    assert (result.status, result.text) == ("error", "partial")
    assert result.end == {"message": "The model is down.", "reason": "upstream"}
    stopped = fresh_key()
    producer = await produce(hub, stopped, ["a"])
    await producer.set_metadata({"usage": {"tokens": 2}})
    await producer.publish("b")
    await producer.flush()
    receipt = await hub.cancel(stopped, wait=5)
    assert receipt is not None and receipt.cancelled and receipt.stopped
    assert receipt.result is not None and receipt.result.status == "cancelled"
    assert (receipt.text_length, receipt.usage) == (2, {"tokens": 2})
    assert receipt.last_content_event_id == f"{producer.generation}:2"
    assert receipt.status.last_event_id == f"{producer.generation}:3"
    again = await hub.cancel(stopped)
    assert again is not None and not again.cancelled and again.text_length == 2


async def test_a_reader_replaying_across_the_compaction_sees_each_event_once(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(replay_batch=7, compact_after_s=3600) as hub:
        key = fresh_key()
        chunks: list[object] = [f"t{i} " for i in range(60)]
        chunks[30:30] = [Event("tool", {"i": 30})]
        producer = await produce(hub, key, chunks)
        await producer.close()
        received: list[StreamEvent] = []
        with anyio.fail_after(10):
            async with hub.subscribe(key) as subscription:
                async for batch in subscription.batches():
                    received += batch
                    if len(received) == 7:
                        assert await hub.compact(key)
        seqs = [e.seq for e in received]
        assert seqs == sorted(set(seqs)) and seqs[:7] == list(range(1, 8))
        assert text_of(received) == "".join(c for c in chunks if isinstance(c, str))
        assert [e.event for e in received if e.event] == ["tool", "done"]
        inside = await collect(hub, key, after=f"{producer.generation}:12")
        assert inside[0].id == f"{producer.generation}:30"
        assert text_of(inside) == "".join(f"t{i} " for i in range(12, 60))


async def test_a_finished_generation_is_compacted_after_the_delay(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(compact_after_s=0) as hub:
        key = fresh_key()
        producer = await produce(hub, key, ["a", "b", "c"])
        await producer.close()
        await eventually(lambda: compacted(hub, key))
        events = await collect(hub, key)
        assert [(e.seq, e.data) for e in events] == [(3, '"abc"'), (4, "{}")]
    async with make_hub(compact=False, compact_after_s=0) as hub:
        key = fresh_key()
        producer = await produce(hub, key, ["a", "b"])
        await producer.close()
        assert not hub._finishing.compactor._queue
        assert not await compacted(hub, key)


async def test_the_finish_hook_runs_once_with_the_result(
    make_hub: Callable[..., StreamHub],
) -> None:
    by_hub: list[StreamResult] = []
    by_policy: list[StreamResult] = []

    async def on_finish(result: StreamResult) -> None:
        by_hub.append(result)

    async with make_hub(on_finish=on_finish) as hub:
        hub.add_policy("chat", StreamPolicy(on_finish=by_policy.append))
        plain, mine, stopped = fresh_key(), fresh_key(), fresh_key()
        producer = await produce(hub, plain, ["Hi"])
        await producer.close()
        own = await produce(hub, mine, ["Yo"], policy="chat")
        await own.close()
        cut = await produce(hub, stopped, ["Bye"])
        await hub.cancel(stopped, wait=5)

        async def ran() -> bool:
            return len(by_hub) == 2 and len(by_policy) == 1

        await eventually(ran)
        for key in (plain, mine, stopped):
            details = await hub.backend.details(key)
            assert details is not None and details.hook == "done"
    assert sorted((r.key, r.status, r.text) for r in by_hub) == sorted(
        [(plain, "done", "Hi"), (stopped, "cancelled", "Bye")]
    )
    assert [(r.key, r.generation, r.text) for r in by_policy] == [(mine, own.generation, "Yo")]
    assert {r.generation for r in by_hub} == {producer.generation, cut.generation}


async def test_a_hook_due_at_shutdown_runs_before_the_hub_stops(
    make_hub: Callable[..., StreamHub],
) -> None:
    calls: list[StreamResult] = []
    async with make_hub(on_finish=calls.append) as hub:
        producer = await produce(hub, fresh_key(), ["bye"])
        await producer.close()
    assert [(r.generation, r.text) for r in calls] == [(producer.generation, "bye")]


async def test_the_next_turn_starts_once_the_last_ones_hook_has_run(
    make_hub: Callable[..., StreamHub],
) -> None:
    order: list[str] = []
    release = anyio.Event()
    retried = anyio.Event()

    async def on_finish(result: StreamResult) -> None:
        order.append(f"hook {result.text}")
        await retried.wait()
        await release.wait()
        order.append("hook done")

    async with make_hub(on_finish=on_finish) as hub:
        key = fresh_key()
        first = await produce(hub, key, ["first"])
        await first.close()

        async def hook_started() -> bool:
            return bool(order)

        await eventually(hook_started)
        claim = hub.backend.claim

        async def counted_claim(*args: Any, **kwargs: Any) -> Any:
            answer = await claim(*args, **kwargs)
            retried.set()
            return answer

        hub.backend.claim = counted_claim  # type: ignore[method-assign]
        async with anyio.create_task_group() as group:

            async def next_turn() -> None:
                producer, created = await hub.register(key)
                order.append(f"claimed {created}")
                await producer.close()

            group.start_soon(next_turn)
            await retried.wait()
            release.set()
    assert order[:3] == ["hook first", "hook done", "claimed True"]


async def test_a_generation_nobody_reads_is_abandoned(make_hub: Callable[..., StreamHub]) -> None:
    async with make_hub(lease_ttl_s=0.4, abandon_after_s=0.3) as hub:
        key = fresh_key()
        producer, _ = await hub.register(key)

        async def generate() -> None:
            while True:
                await producer.publish("x")
                await anyio.sleep(0.01)

        hub.spawn(producer, generate)
        with anyio.fail_after(10):
            assert await producer.wait() == "cancelled"
        result = await hub.result(key)
        assert result is not None and result.status == "cancelled"
        assert result.end == {"reason": "abandoned"}


async def test_a_generation_someone_reads_is_not_abandoned(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(lease_ttl_s=0.4, abandon_after_s=1.5) as hub:
        key = fresh_key()
        producer, _ = await hub.register(key)
        ticks = 0

        async def generate() -> None:  # runs about twice the window
            nonlocal ticks
            while ticks < 60:
                ticks += 1
                await producer.publish("x")
                await anyio.sleep(0.05)
            await producer.close()

        async with hub.subscribe(key) as subscription:
            hub.spawn(producer, generate)
            with anyio.fail_after(10):
                events = [e async for e in subscription]
        assert events[-1].event == "done" and text_of(events) == "x" * 60


async def test_policies_and_the_hub_set_each_keys_retention(
    make_hub: Callable[..., StreamHub],
) -> None:
    def retention_for(key: str) -> float | None:
        return 0.6 if key.startswith("brief:") else None

    async with make_hub(lease_ttl_s=0.5, retention_for=retention_for) as hub:
        hub.add_policy("short", StreamPolicy(retention_s=0.6))
        with pytest.raises(ValueError, match="at least lease_ttl_s"):
            hub.add_policy("too-short", StreamPolicy(retention_s=0.1))
        keys = {"by policy": fresh_key(), "by key": "brief:1", "default": fresh_key()}
        for name, key in keys.items():
            producer, _ = await hub.register(key, policy="short" if name == "by policy" else None)
            await producer.close()

        async def expired() -> bool:
            return (
                await hub.status(keys["by policy"]) is None and await hub.status("brief:1") is None
            )

        await eventually(expired)
        assert await hub.status(keys["default"]) is not None


async def test_remove_stops_a_running_generation_and_forgets_it(hub: StreamHub) -> None:
    key = fresh_key()
    producer, _ = await hub.register(key)
    finished = anyio.Event()

    async def generate() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            finished.set()

    hub.spawn(producer, generate)
    assert await hub.remove(key) is True
    with anyio.fail_after(5):
        await finished.wait()
    assert await hub.status(key) is None
    assert await hub.remove(key) is False


@pytest.fixture(params=["redis", "cluster"])
def shared_backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_shared_hub(
    shared_backend_kind: str, request: pytest.FixtureRequest
) -> Callable[..., StreamHub]:
    """Hubs of two instances on the same Redis (or cluster)."""
    if shared_backend_kind == "redis":
        url = request.getfixturevalue("redis_url")
    else:
        url = request.getfixturevalue("shared_redis_cluster").url

    def make(**options: Any) -> StreamHub:
        return StreamHub.from_url(url, **options)

    return make


async def test_a_hook_left_owed_by_a_dead_instance_runs_on_another(
    make_shared_hub: Callable[..., StreamHub],
) -> None:
    calls: list[tuple[str, StreamResult]] = []
    started = anyio.Event()

    async def stuck(result: StreamResult) -> None:
        started.set()
        await anyio.sleep_forever()

    key = fresh_key()
    options: dict[str, Any] = {"lease_ttl_s": 0.5, "shutdown_grace_s": 0.1}
    async with make_shared_hub(**options) as a:
        a.add_policy("chat", StreamPolicy(on_finish=stuck))
        producer = await produce(a, key, ["answer"], policy="chat")
        await producer.close()
        with anyio.fail_after(5):
            await started.wait()
    async with make_shared_hub(**options) as b:
        b.add_policy("chat", StreamPolicy(on_finish=lambda r: calls.append(("b", r))))

        async def ran() -> bool:
            return bool(calls)

        await eventually(ran, timeout_s=15)
    assert [(name, r.generation, r.status, r.text) for name, r in calls] == [
        ("b", producer.generation, "done", "answer")
    ]


async def test_a_new_start_first_runs_the_hook_of_a_run_whose_instance_died(
    make_shared_hub: Callable[..., StreamHub],
) -> None:
    calls: list[StreamResult] = []
    key = fresh_key()
    async with make_shared_hub(lease_ttl_s=0.5) as hub:
        hub.add_policy("chat", StreamPolicy(on_finish=calls.append))
        await hub.backend.claim(
            key, generation="dead", owner="gone", lease_ms=300, retention_ms=60_000, hook="chat"
        )

        async def lapsed() -> bool:
            return not (await hub.active([key]))[key]

        await eventually(lapsed)
        with anyio.fail_after(10):
            producer, created = await hub.register(key, policy="chat")
        assert created and producer.generation != "dead"
        await producer.close()
    lost = {"message": "The stream's producer was lost.", "reason": "producer_lost"}
    assert [(r.generation, r.status, r.end) for r in calls[:1]] == [("dead", "error", lost)]


@pytest.fixture
async def two_hubs(
    make_shared_hub: Callable[..., StreamHub],
) -> AsyncIterator[tuple[StreamHub, StreamHub]]:
    async with (
        make_shared_hub(lease_ttl_s=0.4, abandon_after_s=1.5) as a,
        make_shared_hub(lease_ttl_s=0.4, abandon_after_s=1.5) as b,
    ):
        yield a, b


async def test_a_reader_on_another_instance_keeps_a_generation_alive(
    two_hubs: tuple[StreamHub, StreamHub],
) -> None:
    a, b = two_hubs
    key = fresh_key()
    producer, _ = await a.register(key)

    async def generate() -> None:  # runs about twice the window
        for _ in range(80):
            await producer.publish("x")
            await anyio.sleep(0.04)
        await producer.close()

    async with b.subscribe(key) as subscription:
        a.spawn(producer, generate)
        with anyio.fail_after(15):
            events = [e async for e in subscription]
    assert events[-1].event == "done" and text_of(events) == "x" * 80
