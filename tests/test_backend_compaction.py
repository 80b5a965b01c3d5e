"""The backend contract for compaction: on memory, Redis and a Redis Cluster, a finished
generation packs into a few entries, and every cursor that was valid before stays valid.

A cursor inside a merged run of text resumes with the rest of that run (one event, the
id of its last token); a replay that pages across the compaction sees no gap and no
duplicate; named events and chunks that are not text come back whole and in place.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Sequence

import anyio
import pytest

from fastapi_streamhub import Event, StreamEvent
from fastapi_streamhub._events import encode_chunk
from fastapi_streamhub.backends import Append, Backend
from fastapi_streamhub.backends._packing import pack, read_packed
from tests.support.polling import eventually

pytestmark = pytest.mark.anyio

RETENTION_MS = 60_000
EDGY = ["", "\n", "\r\n", '"', "\\", "é", "日本", "🙂", "\x00", " ", "\u2028", "tok"]


@pytest.fixture
async def backend(make_backend: Callable[[], Backend]) -> AsyncIterator[Backend]:
    backend = make_backend()
    await backend.open(lambda key, note: None, lambda: None)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        yield backend
        group.cancel_scope.cancel()
    await backend.aclose()


def as_events(generation: str, chunks: Sequence[object]) -> list[StreamEvent]:
    found = []
    for seq, chunk in enumerate(chunks, start=1):
        name, data = encode_chunk(chunk)
        found.append(StreamEvent(generation, seq, name, data))
    return found


async def stored(
    backend: Backend, key: str, chunks: Sequence[object], *, end: str = "done"
) -> list[StreamEvent]:
    """Claim `key`, append `chunks`, end the generation with `end`; the raw events."""
    generation = f"g-{key}"
    await backend.claim(
        key, generation=generation, owner="me", lease_ms=60_000, retention_ms=RETENTION_MS
    )
    raw = as_events(generation, chunks)
    if end == "done":
        raw.append(StreamEvent(generation, len(raw) + 1, "done", "{}"))
    (outcome,) = await backend.append_many(
        [Append(key, generation, raw)], retention_ms=RETENTION_MS
    )
    assert outcome == "ok"
    if end != "done":
        data = json.dumps({"reason": end})
        finished, _ = await backend.finish(
            key,
            generation=generation,
            event=end,  # type: ignore[arg-type]
            data=data,
            retention_ms=RETENTION_MS,
            only_if_lapsed=False,
        )
        assert finished
        raw.append(StreamEvent(generation, len(raw) + 1, end, data))
    return raw


async def compact(backend: Backend, key: str, generation: str, *, chunk: int = 4096) -> None:
    with anyio.fail_after(10):
        while (outcome := await backend.compact(key, generation=generation, chunk=chunk)) == "more":
            pass
    assert outcome == "done"


async def read_all(
    backend: Backend, key: str, generation: str, *, after: int = 0, limit: int = 1000
) -> list[StreamEvent]:
    found: list[StreamEvent] = []
    while True:
        page = await backend.read(key, generation=generation, after_seq=after, limit=limit)
        assert page is not None
        found += page.events
        if len(page.events) < limit:
            return found
        after = page.events[-1].seq


def expected_after(raw: Sequence[StreamEvent], after: int) -> tuple[str, list[StreamEvent]]:
    """The text after `after`, and the events that are not text, in order."""
    rest = [e for e in raw if e.seq > after]
    text = "".join(e.value for e in rest if e.event is None and isinstance(e.value, str))
    return text, [e for e in rest if not (e.event is None and isinstance(e.value, str))]


def split(events: Sequence[StreamEvent]) -> tuple[str, list[StreamEvent]]:
    text = "".join(e.value for e in events if e.event is None and isinstance(e.value, str))
    return text, [e for e in events if not (e.event is None and isinstance(e.value, str))]


async def test_text_merges_and_other_events_stay_whole_in_place(backend: Backend) -> None:
    chunks = ["Hel", "lo", Event("tool", {"q": 1}), "wor", "ld", {"a": 1}, "!", 7]
    raw = await stored(backend, "k", chunks)
    await compact(backend, "k", "g-k")
    packed = await read_all(backend, "k", "g-k")
    assert [(e.id, e.event, e.data) for e in packed] == [
        ("g-k:2", None, '"Hello"'),
        ("g-k:3", "tool", '{"q":1}'),
        ("g-k:5", None, '"world"'),
        ("g-k:6", None, '{"a":1}'),
        ("g-k:7", None, '"!"'),
        ("g-k:8", None, "7"),
        ("g-k:9", "done", "{}"),
    ]
    (state,) = await backend.states(["k"])
    assert state is not None and (state.status, state.last_seq) == ("done", len(raw))


async def test_every_cursor_resumes_exactly_after_compaction(backend: Backend) -> None:
    rng = random.Random(7)
    chunks: list[object] = [rng.choice(EDGY) * rng.randint(1, 3) for _ in range(120)]
    chunks[40:40] = [Event("tool", {"n": "x" * 30}), "y" * 5000, Event("tool", None), "z" * 17]
    raw = await stored(backend, "k", chunks)
    await compact(backend, "k", "g-k")
    for after in range(len(raw)):
        events = await read_all(backend, "k", "g-k", after=after, limit=3)
        assert all(e.seq > after for e in events)
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        assert split(events) == expected_after(raw, after), after
        assert events[-1].id == raw[-1].id


async def test_a_replay_paging_across_the_compaction_has_no_gap_and_no_duplicate(
    backend: Backend,
) -> None:
    chunks: list[object] = [f"t{i} " for i in range(50)]
    chunks[20:20] = [Event("tool", {"i": 20})]
    for first_page in (1, 7, 20, 21, 30, 50):
        key = f"k{first_page}"
        raw = await stored(backend, key, chunks)
        generation = f"g-{key}"
        page = await backend.read(key, generation=generation, after_seq=0, limit=first_page)
        assert page is not None
        before = page.events
        steps = 0
        while await backend.compact(key, generation=generation, chunk=8) == "more":
            steps += 1
            middle = await backend.read(
                key, generation=generation, after_seq=before[-1].seq, limit=1
            )
            assert middle is not None and middle.events == raw[before[-1].seq : before[-1].seq + 1]
        after = await read_all(backend, key, generation, after=before[-1].seq, limit=4)
        everything = before + after
        assert [e.seq for e in everything] == sorted({e.seq for e in everything})
        assert split(everything) == expected_after(raw, 0)
        assert everything[-1] == raw[-1]


async def test_cancelled_and_failed_generations_compact_too(backend: Backend) -> None:
    for end in ("cancelled", "error"):
        raw = await stored(backend, end, ["a", "b", Event("tool", 1), "c"], end=end)
        await compact(backend, end, f"g-{end}")
        packed = await read_all(backend, end, f"g-{end}")
        assert [(e.seq, e.event, e.data) for e in packed] == [
            (2, None, '"ab"'),
            (3, "tool", "1"),
            (4, None, '"c"'),
            (5, end, raw[-1].data),
        ]


async def test_compaction_waits_for_the_end_and_is_safe_to_repeat(backend: Backend) -> None:
    await backend.claim(
        "k", generation="g1", owner="me", lease_ms=60_000, retention_ms=RETENTION_MS
    )
    await backend.append_many(
        [Append("k", "g1", as_events("g1", ["a", "b"]))], retention_ms=RETENTION_MS
    )
    assert await backend.compact("k", generation="g1", chunk=4096) == "skipped"
    done = StreamEvent("g1", 3, "done", "{}")
    await backend.append_many([Append("k", "g1", [done])], retention_ms=RETENTION_MS)
    assert await backend.compact("k", generation="other", chunk=4096) == "skipped"
    assert await backend.compact("missing", generation="g1", chunk=4096) == "skipped"
    for _ in range(2):
        assert await backend.compact("k", generation="g1", chunk=4096) == "done"
        assert await read_all(backend, "k", "g1") == [StreamEvent("g1", 2, None, '"ab"'), done]
    details = await backend.details("k")
    assert details is not None and details.compacted
    created, _ = await backend.claim(
        "k", generation="g2", owner="me", lease_ms=60_000, retention_ms=RETENTION_MS
    )
    assert created
    assert await backend.read("k", generation="g1", after_seq=0, limit=10) is None
    assert await read_all(backend, "k", "g2") == []
    details = await backend.details("k")
    assert details is not None and not details.compacted


async def test_a_compacted_session_is_removed_and_expires_whole(backend: Backend) -> None:
    await stored(backend, "k", ["a", "b"])
    await compact(backend, "k", "g-k")
    assert await backend.remove("k") is True
    assert await backend.states(["k"]) == [None]
    await backend.claim("short", generation="g", owner="me", lease_ms=100, retention_ms=300)
    await backend.append_many(
        [Append("short", "g", [*as_events("g", ["a", "b"]), StreamEvent("g", 3, "done", "{}")])],
        retention_ms=300,
    )
    await compact(backend, "short", "g")

    async def expired() -> bool:
        return await backend.states(["short"]) == [None]

    await eventually(expired)


async def test_packing_matches_the_reference_at_every_cursor(backend: Backend) -> None:
    """The Redis scripts follow `_packing.py` byte for byte: runs split at the same
    places (entry size, chunk boundaries), so every read answers the same events."""
    rng = random.Random(11)
    pieces = [*EDGY, "x" * 15, "x" * 16, "é" * 8, "y" * 300]
    for case in range(4):
        chunks: list[object] = []
        for _ in range(rng.randint(50, 400)):
            roll = rng.random()
            if roll < 0.8:
                chunks.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))))
            elif roll < 0.9:
                chunks.append(Event(rng.choice(["tool", "é"]), {"n": rng.random()}))
            else:
                chunks.append(rng.choice([{"a": "b" * rng.randint(0, 900)}, None, 3.5]))
        key = f"case{case}"
        raw = await stored(backend, key, chunks)
        chunk = rng.choice([5, 64, 4096])
        await compact(backend, key, f"g-{key}", chunk=chunk)
        reference = pack(raw, chunk=chunk)
        for after in range(0, len(raw), 7):
            limit = rng.choice([1, 2, 50])
            max_bytes = rng.choice([None, 1, 5000])
            page = await backend.read(
                key, generation=f"g-{key}", after_seq=after, limit=limit, max_bytes=max_bytes
            )
            assert page is not None
            expected = read_packed(reference, f"g-{key}", after=after, limit=limit)
            assert page.events == within(expected, max_bytes)


def within(events: list[StreamEvent], max_bytes: int | None) -> list[StreamEvent]:
    """The first events whose data fits `max_bytes` (at least one)."""
    size = 0
    for index, event in enumerate(events):
        size += len(event.data.encode())
        if max_bytes is not None and size > max_bytes and index > 0:
            return events[:index]
    return events
