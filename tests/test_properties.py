"""Property tests: what holds for every output and every cursor, on both backends.

- Whatever a producer yields (text with CR, LF, CRLF, edge spaces, empty strings,
  any Unicode; JSON objects; named events) is what a subscriber receives, seq
  1, 2, 3... with no gap, and a replay from any cursor, whether it joins before,
  during or after the live part, is exactly the suffix after that cursor.
- A resume from the terminal cursor is exhausted; a cursor ahead of the stream is
  refused; a cursor of another generation gets `reset`, then the whole current one;
  any text that is not a well-formed cursor is refused, never taken as "from the start".
- Over HTTP, through a real uvicorn, any such value survives the SSE wire exactly.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from fastapi_streamhub import Event, InvalidCursorError, StreamEvent, StreamHub
from fastapi_streamhub._events import RESERVED_EVENTS
from tests.support.redis_server import RedisServer
from tests.support.sse import read_events, read_stream
from tests.support.streams import collect
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

_keys = itertools.count()

# Pieces that mean something to SSE, JSON or HTTP, mixed into arbitrary text.
HOSTILE_PIECES = [
    "\r",
    "\n",
    "\r\n",
    "\n\n",
    "\r\r",
    " ",
    "  ",
    "\t",
    "",
    "\x00",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "é",
    "e\u0301",
    "日本",
    "🙂",
    "data: x",
    "event: done",
    "id: 1",
    "retry: 1",
    ":",
    ": ping",
    '"',
    "\\",
    "\\n",
    "{}",
    "}",
]
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=3), max_size=10).map("".join),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
event_names = st.text(
    st.characters(categories=("L", "N", "P", "S"), include_characters=" ", exclude_characters=":"),
    min_size=1,
    max_size=12,
).filter(lambda name: name not in RESERVED_EVENTS)
chunks = st.one_of(
    texts,
    st.dictionaries(texts, json_values, max_size=4),
    st.builds(Event, event=event_names, data=json_values),
)
chunk_lists = st.lists(chunks, max_size=12)

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fresh_key() -> str:
    return f"prop:{next(_keys)}"


def as_received(chunk: object) -> tuple[str | None, Any]:
    """(event name, decoded data) that a subscriber must see for `chunk`."""
    if isinstance(chunk, Event):
        return chunk.event, chunk.data
    return None, chunk


def received(events: list[StreamEvent]) -> list[tuple[str | None, Any]]:
    return [(e.event, e.value) for e in events]


async def produce(hub: StreamHub, items: list[object]) -> tuple[str, list[StreamEvent]]:
    """Publish `items` under a fresh key, close, and read it all back."""
    key = fresh_key()
    producer, created = await hub.register(key)
    assert created
    for item in items:
        await producer.publish(item)
    assert await producer.close() == "done"
    return key, await collect(hub, key)


@PROPERTY_SETTINGS
@given(items=chunk_lists)
async def test_output_is_what_was_yielded_and_any_cursor_replays_its_suffix(
    hub: StreamHub, items: list[object]
) -> None:
    key, full = await produce(hub, items)
    assert received(full[:-1]) == [as_received(item) for item in items]
    assert full[-1].event == "done" and full[-1].value == {}
    assert [e.seq for e in full] == list(range(1, len(items) + 2))
    assert len({e.generation for e in full}) == 1
    generation = full[0].generation
    for seq in range(len(full)):
        assert await collect(hub, key, after=f"{generation}:{seq}") == full[seq:]
    async with hub.subscribe(key, after=full[-1].id) as terminal:
        assert terminal.exhausted
        assert [event async for event in terminal] == []


@st.composite
def joins(draw: st.DrawFn) -> tuple[list[object], int, list[int]]:
    """(items, how many are published before the subscribers join, their cursors)."""
    items = draw(chunk_lists)
    split = draw(st.integers(0, len(items)))
    return items, split, draw(st.lists(st.integers(0, split), min_size=1, max_size=4))


# Everything is drawn before the test body runs: a draw inside an async test that
# runs out of data raises hypothesis' StopTest, a BaseException that kills anyio's
# test runner.
@PROPERTY_SETTINGS
@given(case=joins())
async def test_a_subscriber_joining_at_any_cursor_mid_stream_gets_exactly_the_suffix(
    hub: StreamHub, case: tuple[list[object], int, list[int]]
) -> None:
    items, split, cursors = case
    key = fresh_key()
    producer, _ = await hub.register(key)
    for item in items[:split]:
        await producer.publish(item)
    await producer.flush()
    results: dict[int, list[StreamEvent]] = {}

    async def follow(index: int, seq: int) -> None:
        results[index] = await collect(hub, key, after=f"{producer.generation}:{seq}")

    async with anyio.create_task_group() as group:
        for index, seq in enumerate(cursors):
            group.start_soon(follow, index, seq)
        for item in items[split:]:
            await producer.publish(item)
        await producer.close()
    full = await collect(hub, key)
    assert received(full[:-1]) == [as_received(item) for item in items]
    for index, seq in enumerate(cursors):
        assert results[index] == full[seq:], f"joined after seq {seq}"


URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")


def well_formed(text: str) -> bool:
    """The documented cursor: `<generation>:<seq>`, a generation of 1 to 64 URL-safe
    characters and a seq in plain decimal (no sign, no leading zero, at most 18 digits)."""
    generation, colon, seq = text.partition(":")
    return (
        bool(colon)
        and 1 <= len(generation) <= 64
        and set(generation) <= URLSAFE
        and seq.isascii()
        and seq.isdigit()
        and len(seq) <= 18
        and (seq == "0" or not seq.startswith("0"))
    )


EDITS = ["", " ", "+", "-", "0", "00", "\n", "\r", "\t", ":", "x", "\x00", "\u0661", "_", "1" * 18]
# A cursor to try, before the stream's generation is known: (seq, where to insert an
# edit into the real cursor `<generation>:<seq>`, the edit), or a whole text.
cursor_specs = st.one_of(
    st.tuples(st.integers(0, 12), st.none(), st.none()),
    st.tuples(st.integers(0, 12), st.integers(0, 30), st.sampled_from(EDITS)),
    st.from_regex(r"[A-Za-z0-9_\-]{1,66}:-?[0-9]{1,20}", fullmatch=True),
    st.text(max_size=30),
)


def build_cursor(spec: tuple[int, int | None, str | None] | str, generation: str) -> str:
    if isinstance(spec, str):
        return spec
    seq, position, edit = spec
    real = f"{generation}:{seq}"
    if position is None or edit is None:
        return real
    return real[:position] + edit + real[position:]


@PROPERTY_SETTINGS
@given(items=st.lists(texts, max_size=6), specs=st.lists(cursor_specs, min_size=1, max_size=8))
async def test_every_cursor_text_gets_its_documented_answer(
    hub: StreamHub, items: list[object], specs: list[tuple[int, int | None, str | None] | str]
) -> None:
    key, full = await produce(hub, items)
    generation, last = full[0].generation, full[-1].seq
    for spec in specs:
        text = build_cursor(spec, generation)
        if not well_formed(text):
            event("malformed")
            with pytest.raises(InvalidCursorError):
                hub.subscribe(key, after=text)
            continue
        other, _, seq_text = text.partition(":")
        seq = int(seq_text)
        event("foreign" if other != generation else "ahead" if seq > last else "current")
        if other != generation:
            got = await collect(hub, key, after=text)
            assert got[0].event == "reset" and got[0].value == {"generation": generation}
            assert got[1:] == full
        elif seq > last:
            got = await collect(hub, key, after=text)
            assert got[0].event == "reset" and got[1:] == full, "storage lost it: reset"
        else:
            assert await collect(hub, key, after=text) == full[seq:]


# ----------------------------------------------------------------------------------------
# Over HTTP: one uvicorn per backend for the whole module
# ----------------------------------------------------------------------------------------

APP = "tests.apps.hostile_app:create_app"
_runs = itertools.count()


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[UvicornServer]:
    with ExitStack() as stack:
        env = {"TEST_MAX_EVENT_BYTES": str(1024 * 1024)}
        if request.param == "redis":
            env["TEST_REDIS_URL"] = stack.enter_context(RedisServer()).url
        server = stack.enter_context(UvicornServer(APP, factory=True, env=env, ready_path="/docs"))
        yield server
        print(f"----- uvicorn log -----\n{server.logs()[-8000:]}")


wire_values = st.one_of(texts, st.dictionaries(texts, json_values, max_size=3))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(wire_values, min_size=1, max_size=6), resume_after=st.integers(1, 6))
@example(values=["\n\nevent: done\ndata: {}\n\n", "id: x\r\nretry: 1\r", ""], resume_after=1)
async def test_any_value_survives_the_sse_wire_exactly(
    server: UvicornServer, values: list[Any], resume_after: int
) -> None:
    rid = f"wire{next(_runs)}"
    async with server.client() as http:
        events = await read_events(http, "POST", f"/echo/{rid}", json={"chunks": values})
        assert [e.event for e in events] == ["message"] * len(values) + ["done"]
        assert [json.loads(e.data) for e in events[:-1]] == values
        assert all(e.has_id for e in events)
        generation = events[0].id.rpartition(":")[0]
        assert [e.id for e in events] == [f"{generation}:{i}" for i in range(1, len(events) + 1)]
        seq = min(resume_after, len(values))
        resumed = await read_events(
            http, "GET", f"/echo/{rid}/stream", headers={"Last-Event-ID": events[seq - 1].id}
        )
        assert resumed == events[seq:]
        finished = await read_stream(
            http, "GET", f"/echo/{rid}/stream", params={"last_event_id": events[-1].id}
        )
        assert finished.status_code == 204 and finished.events == []
