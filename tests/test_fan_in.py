"""Fan-in on every backend: several sources of one generation, one order (issue 11).

Each test reads what a user relies on: seqs 1..n without a gap or a duplicate, every
source's own values in its own order, one end per source and one for the generation,
the same order for a live reader and for a replay from any cursor, and generators
really stopped (their `finally` ran) when the generation is cancelled.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import anyio
import anyio.lowlevel
import pytest

from fastapi_streamhub import (
    Event,
    ProducerStoppedError,
    StreamError,
    StreamEvent,
    StreamHub,
    current_producer,
)
from tests.support.fan_in import assert_fanned_in, by_source, paced, source_ends
from tests.support.streams import collect, stalled, start

pytestmark = pytest.mark.anyio

PLANNER = [f"plan {i} " for i in range(12)]
SEARCH = [f"hit {i}" for i in range(9)]
CALC = [{"step": i} for i in range(7)]


async def planner_with_tools(ends_with: str = "all") -> AsyncGenerator[object, None]:
    producer = current_producer()
    producer.ends_with = ends_with  # type: ignore[assignment]
    producer.spawn("search", paced(SEARCH))
    producer.spawn("calc", paced([*CALC, Event("result", 42)]))
    async for value in paced(PLANNER):
        yield value


async def test_sources_share_one_gapless_order_that_every_reader_sees(hub: StreamHub) -> None:
    await start(hub, "fan", planner_with_tools())
    events = await collect(hub, "fan")
    assert_fanned_in(
        events,
        {"main": PLANNER, "search": SEARCH, "calc": [*CALC, 42]},
        {"main": "done", "search": "done", "calc": "done"},
    )
    assert {e.source for e in events if e.event == "source"} == {"main", "search", "calc"}
    result = next(e.sourced for e in events if e.sourced.event == "result")
    assert result == ("calc", "result", 42)
    for cursor in (events[0].id, events[len(events) // 2].id, events[-2].id):
        assert (
            await collect(hub, "fan", after=cursor)
            == events[events.index(_at(events, cursor)) + 1 :]
        )


def _at(events: list[StreamEvent], cursor: str) -> StreamEvent:
    return next(e for e in events if e.id == cursor)


async def test_the_first_sources_events_are_sent_as_ever(hub: StreamHub) -> None:
    """The first source's events are plain: a client that knows nothing of sources reads
    the first source's answer; the others come as `source` envelopes, exactly."""
    search_may_go = anyio.Event()

    async def search() -> AsyncGenerator[object, None]:
        await search_may_go.wait()
        yield "found"
        yield Event("tool", {"q": "x"})

    async def first() -> AsyncGenerator[object, None]:
        yield "before"
        current_producer().spawn("search", search())
        yield Event("note", [1])
        await current_producer().flush()
        search_may_go.set()

    await start(hub, "plain", first())
    events = await collect(hub, "plain")
    assert [(e.seq, e.event, e.data) for e in events] == [
        (1, None, '"before"'),
        (2, "note", "[1]"),
        (3, "source", '{"source":"main","event":"done","data":{}}'),
        (4, "source", '{"source":"search","data":"found"}'),
        (5, "source", '{"source":"search","event":"tool","data":{"q":"x"}}'),
        (6, "source", '{"source":"search","event":"done","data":{}}'),
        (7, "done", "{}"),
    ]


async def test_a_failing_source_ends_alone(hub: StreamHub) -> None:
    async def broken() -> AsyncGenerator[object, None]:
        yield "partial"
        raise StreamError("The search backend is down.")

    async def crashing() -> AsyncGenerator[object, None]:
        yield "x"
        raise RuntimeError("secret in a traceback")

    async def first() -> AsyncGenerator[object, None]:
        current_producer().spawn("search", broken())
        current_producer().spawn("calc", crashing())
        async for value in paced(PLANNER):
            yield value

    await start(hub, "fail", first())
    events = await collect(hub, "fail")
    assert_fanned_in(
        events,
        {"main": PLANNER, "search": ["partial"], "calc": ["x"]},
        {"main": "done", "search": "error", "calc": "error"},
    )
    errors = {e.sourced.source: e.sourced.value for e in events if e.sourced.event == "error"}
    assert errors == {
        "search": {"message": "The search backend is down.", "reason": "failed"},
        "calc": {"message": "The stream failed.", "reason": "failed"},
    }


async def test_ends_with_first_cancels_the_other_sources(hub: StreamHub) -> None:
    started, cleaned_up = anyio.Event(), anyio.Event()

    async def first() -> AsyncGenerator[object, None]:
        producer = current_producer()
        producer.ends_with = "first"
        producer.spawn("slow", stalled(started, cleaned_up))
        await started.wait()
        yield "answer"

    await start(hub, "first", first())
    events = await collect(hub, "first")
    assert_fanned_in(
        events,
        {"main": ["answer"], "slow": ["waiting"]},
        {"main": "done", "slow": "cancelled"},
    )
    assert events[-2].sourced == ("slow", "cancelled", {"reason": "first_source_ended"})
    with anyio.fail_after(5):
        await cleaned_up.wait()


async def test_ends_with_first_when_the_first_source_fails(hub: StreamHub) -> None:
    started, cleaned_up = anyio.Event(), anyio.Event()

    async def first() -> AsyncGenerator[object, None]:
        current_producer().ends_with = "first"
        current_producer().spawn("slow", stalled(started, cleaned_up))
        await started.wait()
        yield "partial"
        raise StreamError("The planner gave up.")

    await start(hub, "first-fails", first())
    events = await collect(hub, "first-fails")
    assert events[-1].event == "error"
    assert events[-1].value == {"message": "The planner gave up.", "reason": "failed"}
    assert source_ends(events) == {"main": "error", "slow": "cancelled"}


async def test_cancel_stops_every_source_and_runs_each_finally(hub: StreamHub) -> None:
    flags = {name: (anyio.Event(), anyio.Event()) for name in ("main", "a", "b")}

    async def first() -> AsyncGenerator[object, None]:
        producer = current_producer()
        for name in ("a", "b"):
            producer.spawn(name, stalled(*flags[name]))
        async for value in stalled(*flags["main"]):
            yield value

    await start(hub, "cancel", first())
    with anyio.fail_after(5):
        for started, _ in flags.values():
            await started.wait()
    outcome = await hub.cancel("cancel", wait=5)
    assert outcome is not None and outcome.cancelled and outcome.stopped
    assert all(cleaned_up.is_set() for _, cleaned_up in flags.values())
    events = await collect(hub, "cancel")
    assert events[-1].event == "cancelled"
    assert by_source(events) == {"main": ["waiting"], "a": ["waiting"], "b": ["waiting"]}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_source_in_an_async_with_block(hub: StreamHub) -> None:
    producer, _ = await hub.register("block")
    async with producer.source("tool") as tool:
        await tool.publish("t1")
        await producer.publish("m1")
        await tool.publish({"t": 2})
    assert not tool.running
    with pytest.raises(ProducerStoppedError):
        await tool.publish("late")
    assert producer.sources == ["main"]
    assert await producer.close() == "done"
    events = await collect(hub, "block")
    assert_fanned_in(
        events, {"tool": ["t1", {"t": 2}], "main": ["m1"]}, {"tool": "done", "main": "done"}
    )


async def test_an_async_with_block_that_raises_ends_its_source_with_error(
    hub: StreamHub,
) -> None:
    producer, _ = await hub.register("raises")

    async def use(name: str, raised: Exception) -> None:
        async with producer.source(name) as source:
            await source.publish("t1")
            raise raised

    with pytest.raises(KeyError):
        await use("tool", KeyError("oops"))
    with pytest.raises(StreamError):
        await use("other", StreamError("No results."))
    await producer.close()
    ends = {
        e.sourced.source: e.sourced.value
        for e in await collect(hub, "raises")
        if e.sourced.terminal and e.event == "source"
    }
    assert ends == {
        "tool": {"message": "The stream failed.", "reason": "failed"},
        "other": {"message": "No results.", "reason": "failed"},
        "main": {},
    }


async def test_source_names_are_checked(hub: StreamHub) -> None:
    producer, _ = await hub.register("names")
    producer.source("search")
    for bad in ("", "main", "search", "x" * 101, "a\nb"):
        with pytest.raises(ValueError, match="source"):
            producer.source(bad)
    with pytest.raises(TypeError):
        producer.source(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="called"):
        producer.spawn("uncalled", paced)  # type: ignore[arg-type]
    assert producer.sources == ["main", "search"]
    with pytest.raises(ValueError, match="reserved"):
        Event("source", 1)
    with pytest.raises(ValueError, match="ends_with"):
        producer.ends_with = "last"  # type: ignore[assignment]
    await hub.cancel("names")
    with pytest.raises(ProducerStoppedError):
        producer.source("after")


async def test_the_event_cap_holds_for_the_generation_as_a_whole(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(max_events=20) as hub:

        async def endless(name: str) -> AsyncGenerator[object, None]:
            index = 0
            while True:
                yield f"{name}{index}"
                index += 1
                await anyio.lowlevel.checkpoint()

        async def first() -> AsyncGenerator[object, None]:
            current_producer().spawn("a", endless("a"))
            current_producer().spawn("b", endless("b"))
            async for value in endless("m"):
                yield value

        await start(hub, "capped", first())
        events = await collect(hub, "capped")
    # Room is kept for the ends of the three running sources and the generation's: the
    # 17th event would leave too little, so the generation ends there, within the cap.
    assert len(events) == 17
    assert [e.seq for e in events] == list(range(1, 18))
    assert events[-1].event == "error" and events[-1].value["reason"] == "limit"
    assert set(by_source(events)) == {"main", "a", "b"}


async def test_a_fanned_in_generation_reads_the_same_once_compacted(hub: StreamHub) -> None:
    """Compaction merges the first source's consecutive text chunks (as it always did);
    every other source's event keeps its id, and no text is lost or repeated."""
    await start(hub, "packed", planner_with_tools())
    events = await collect(hub, "packed")
    assert await hub.compact("packed")
    for after in (None, events[len(events) // 2].id):
        seq = 0 if after is None else int(after.rpartition(":")[2])
        before, now = events[seq:], await collect(hub, "packed", after=after)
        assert _named(now) == _named(before)
        assert _text(now) == _text(before)
    result = await hub.result("packed")
    assert result is not None and result.text == "".join(PLANNER)
    searched = [
        e.data["data"] for e in result.events if e.source == "search" and "event" not in e.data
    ]
    assert searched == SEARCH


def _named(events: list[StreamEvent]) -> list[tuple[str, str | None, str]]:
    return [(e.id, e.event, e.data) for e in events if e.event is not None]


def _text(events: list[StreamEvent]) -> str:
    return "".join(e.value for e in events if e.event is None)


async def test_the_byte_cap_holds_for_the_generation_as_a_whole(
    make_hub: Callable[..., StreamHub],
) -> None:
    """Each source alone stays well under `max_bytes`; together they reach it, and the
    generation ends with `error` (`limit`) before storing more than the cap."""
    async with make_hub(max_bytes=2_000) as hub:

        async def chunks(name: str) -> AsyncGenerator[object, None]:
            for index in range(40):
                yield f"{name}{index:03d}" + "x" * 20
                await anyio.lowlevel.checkpoint()

        async def first() -> AsyncGenerator[object, None]:
            current_producer().spawn("a", chunks("a"))
            current_producer().spawn("b", chunks("b"))
            async for value in chunks("m"):
                yield value

        await start(hub, "bytes", first())
        events = await collect(hub, "bytes")
    assert events[-1].event == "error" and events[-1].value["reason"] == "limit"
    assert sum(len(e.data.encode()) for e in events[:-1]) <= 2_000
    assert set(by_source(events)) == {"main", "a", "b"}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
