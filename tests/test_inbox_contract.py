"""The inbox contract: messages to a running generation, the same on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from fastapi_streamhub import StreamEvent
from fastapi_streamhub.backends import (
    Append,
    Backend,
    Control,
    InboxEntry,
    InboxRead,
    Posted,
    PostOutcome,
)
from tests.test_backend_contract import LEASE_MS, RETENTION_MS, Inbox, claim

pytestmark = pytest.mark.anyio


@pytest.fixture
def notes() -> Inbox:
    return Inbox()


@pytest.fixture
async def backend(make_backend: Callable[[], Backend], notes: Inbox) -> AsyncIterator[Backend]:
    backend = make_backend()
    await backend.open(notes.on_note, notes.on_resync)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        yield backend
        group.cancel_scope.cancel()
    await backend.aclose()


async def post(backend: Backend, key: str, text: str, *, max_entries: int = 100) -> PostOutcome:
    return await backend.post(
        key, kind="steer", payload=text, source="tester", max_entries=max_entries
    )


async def take(
    backend: Backend, key: str, generation: str, after: str = "", limit: int = 100
) -> list[InboxEntry] | None:
    (entries,) = await backend.take([InboxRead(key, generation, after)], limit=limit)
    return entries


async def end(backend: Backend, key: str, generation: str) -> None:
    done = [StreamEvent(generation, 1, "done", "{}")]
    (outcome,) = await backend.append_many(
        [Append(key, generation, done)], retention_ms=RETENTION_MS
    )
    assert outcome == "ok"


async def test_a_post_to_an_unknown_session_is_not_found(backend: Backend) -> None:
    assert await post(backend, "nobody", '"hi"') == "not_found"


async def test_messages_are_taken_in_the_order_they_were_posted(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    posted = [await post(backend, "k", f'"m{i}"') for i in range(5)]
    assert all(isinstance(p, Posted) and p.generation == "g1" for p in posted)
    entries = await take(backend, "k", "g1")
    assert entries is not None
    assert [e.payload for e in entries] == [f'"m{i}"' for i in range(5)]
    assert [e.id for e in entries] == [p.id for p in posted if isinstance(p, Posted)]
    assert {(e.kind, e.source) for e in entries} == {("steer", "tester")}


async def test_a_take_after_an_id_returns_only_what_came_later(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    for i in range(5):
        await post(backend, "k", f'"m{i}"')
    first = await take(backend, "k", "g1", limit=2)
    assert first is not None and [e.payload for e in first] == ['"m0"', '"m1"']
    rest = await take(backend, "k", "g1", after=first[-1].id)
    assert rest is not None and [e.payload for e in rest] == ['"m2"', '"m3"', '"m4"']
    assert await take(backend, "k", "g1", after=rest[-1].id) == []


async def test_a_post_signals_the_owner_on_the_control_channel(
    backend: Backend, notes: Inbox
) -> None:
    await claim(backend, "k", "g1")
    await backend.watch("k", "control")
    await post(backend, "k", '"hi"')
    assert await notes.wait_for(1) == [("k", Control("inbox", "g1"))]


async def test_an_ended_generation_takes_no_message(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    await end(backend, "k", "g1")
    assert await post(backend, "k", '"late"') == "not_running"


async def test_a_message_never_reaches_the_next_generation(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    await post(backend, "k", '"for g1"')
    await end(backend, "k", "g1")
    await claim(backend, "k", "g2")
    assert await take(backend, "k", "g2") == []
    assert await take(backend, "k", "g1") is None
    posted = await post(backend, "k", '"for g2"')
    assert isinstance(posted, Posted) and posted.generation == "g2"
    entries = await take(backend, "k", "g2")
    assert entries is not None and [e.payload for e in entries] == ['"for g2"']


async def test_a_generation_whose_lease_lapsed_takes_no_message(backend: Backend) -> None:
    await claim(backend, "k", "g1", lease_ms=1)
    await anyio.sleep(0.01)
    assert await post(backend, "k", '"anyone?"') == "not_running"


async def test_an_inbox_holds_at_most_max_entries(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    for i in range(3):
        assert isinstance(await post(backend, "k", f'"{i}"', max_entries=3), Posted)
    assert await post(backend, "k", '"one too many"', max_entries=3) == "full"
    entries = await take(backend, "k", "g1")
    assert entries is not None and len(entries) == 3


async def test_many_inboxes_are_read_in_one_call(backend: Backend) -> None:
    keys = [f"key-{i}" for i in range(12)]
    for key in keys:
        await claim(backend, key, f"gen-{key}")
        await post(backend, key, f'"to {key}"')
    reads = [InboxRead(key, f"gen-{key}") for key in keys] + [InboxRead("key-0", "other")]
    found = await backend.take(reads, limit=10)
    assert [None if e is None else [m.payload for m in e] for e in found] == [
        [f'"to {key}"'] for key in keys
    ] + [None]


async def test_payloads_keep_every_byte(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    text = '{"text": "line one\\nline two \\u00e9 \u4e2d \U0001f600"}'
    await backend.post("k", kind="a kind\n", payload=text, source="s\n1", max_entries=10)
    entries = await take(backend, "k", "g1")
    assert entries is not None
    assert [(e.kind, e.payload, e.source) for e in entries] == [("a kind\n", text, "s\n1")]


async def test_remove_deletes_the_inbox(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    await post(backend, "k", '"x"')
    assert await backend.remove("k") is True
    assert await post(backend, "k", '"y"') == "not_found"
    created, _ = await backend.claim(
        "k", generation="g1", owner="me", lease_ms=LEASE_MS, retention_ms=RETENTION_MS
    )
    assert created
    assert await take(backend, "k", "g1") == []


async def test_what_the_owner_has_read_leaves_the_inbox(backend: Backend) -> None:
    """`max_entries` bounds the messages the owner has not read yet, not all it ever got."""
    await claim(backend, "k", "g1")
    for i in range(3):
        assert isinstance(await post(backend, "k", f'"{i}"', max_entries=3), Posted)
    assert await post(backend, "k", '"one too many"', max_entries=3) == "full"
    first = await take(backend, "k", "g1", limit=2)
    assert first is not None and [e.payload for e in first] == ['"0"', '"1"']
    assert await post(backend, "k", '"still full"', max_entries=3) == "full"
    rest = await take(backend, "k", "g1", after=first[-1].id)
    assert rest is not None and [e.payload for e in rest] == ['"2"']
    for text in ('"3"', '"4"'):
        assert isinstance(await post(backend, "k", text, max_entries=3), Posted)
    assert await post(backend, "k", '"full again"', max_entries=3) == "full"
    later = await take(backend, "k", "g1", after=rest[0].id)
    assert later is not None and [e.payload for e in later] == ['"3"', '"4"']
