"""The backend contract for the end of a generation, on memory, Redis and a Redis
Cluster: times and retention kept per claim, the finish hook (owed, taken, held, done,
and blocking the next claim), its index, readers marked, and abandonment."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from fastapi_streamhub import StreamEvent
from fastapi_streamhub.backends import Append, Backend, Control, EventBatch, Notification
from fastapi_streamhub.backends._base import Unread
from tests.support.polling import eventually

pytestmark = pytest.mark.anyio

RETENTION_MS = 60_000
LEASE_MS = 60_000


@pytest.fixture
def notes() -> list[tuple[str, Notification]]:
    return []


@pytest.fixture
async def backend(
    make_backend: Callable[[], Backend], notes: list[tuple[str, Notification]]
) -> AsyncIterator[Backend]:
    backend = make_backend()
    await backend.open(lambda key, note: notes.append((key, note)), lambda: None)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        yield backend
        group.cancel_scope.cancel()
    await backend.aclose()


async def claim(backend: Backend, key: str, generation: str, **options: object) -> bool:
    settings: dict[str, object] = {"lease_ms": LEASE_MS, "retention_ms": RETENTION_MS}
    created, _ = await backend.claim(
        key,
        generation=generation,
        owner="me",
        **{**settings, **options},  # type: ignore[arg-type]
    )
    return created


async def end(backend: Backend, key: str, generation: str, seq: int = 1) -> None:
    done = [StreamEvent(generation, seq, "done", "{}")]
    (outcome,) = await backend.append_many(
        [Append(key, generation, done)], retention_ms=RETENTION_MS
    )
    assert outcome == "ok"


async def test_details_tell_when_a_generation_started_and_ended(backend: Backend) -> None:
    before = int(time.time() * 1000) - 1000
    await claim(backend, "k", "g1")
    details = await backend.details("k")
    assert details is not None
    assert details.state.generation == "g1" and details.ended_ms is None
    assert before <= details.started_ms <= before + 60_000
    assert (details.hook, details.hook_name, details.compacted) == ("none", "", False)
    await end(backend, "k", "g1")
    details = await backend.details("k")
    assert details is not None and details.ended_ms is not None
    assert details.ended_ms >= details.started_ms
    assert await backend.details("missing") is None


async def test_the_retention_of_the_claim_applies_at_every_end(backend: Backend) -> None:
    await claim(backend, "brief", "g1", retention_ms=400)
    await end(backend, "brief", "g1")
    await claim(backend, "cut", "g1", retention_ms=400)
    await backend.finish(
        "cut",
        generation="g1",
        event="cancelled",
        data="{}",
        retention_ms=RETENTION_MS,
        only_if_lapsed=False,
    )

    async def expired() -> bool:
        return await backend.states(["brief", "cut"]) == [None, None]

    await eventually(expired)


async def test_a_finish_hook_is_taken_once_and_held(backend: Backend) -> None:
    await claim(backend, "k", "g1", hook="chat")
    details = await backend.details("k")
    assert details is not None and (details.hook, details.hook_name) == ("owed", "chat")
    take = backend.take_hook
    assert await take("k", generation="g1", holder="a", hold_ms=LEASE_MS, grace_ms=0) == "none"
    await end(backend, "k", "g1")
    assert await take("k", generation="g1", holder="b", hold_ms=LEASE_MS, grace_ms=LEASE_MS) == (
        "busy"
    )
    assert await take("k", generation="g1", holder="a", hold_ms=LEASE_MS, grace_ms=0) == "taken"
    assert await take("k", generation="g1", holder="b", hold_ms=LEASE_MS, grace_ms=0) == "busy"
    assert await take("k", generation="g1", holder="a", hold_ms=200, grace_ms=0) == "taken"
    assert await take("k", generation="other", holder="b", hold_ms=1, grace_ms=0) == "none"

    async def lapsed() -> bool:
        taken = await take("k", generation="g1", holder="b", hold_ms=LEASE_MS, grace_ms=0)
        return taken == "taken"

    await eventually(lapsed)
    await backend.hook_done("k", generation="g1")
    assert await take("k", generation="g1", holder="c", hold_ms=LEASE_MS, grace_ms=0) == "done"
    details = await backend.details("k")
    assert details is not None and details.hook == "done"


async def test_an_owed_hook_keeps_the_next_claim_out_until_it_ran(backend: Backend) -> None:
    await claim(backend, "k", "g1", hook="chat")
    await end(backend, "k", "g1")
    created, state = await backend.claim(
        "k", generation="g2", owner="me", lease_ms=LEASE_MS, retention_ms=RETENTION_MS
    )
    assert not created and (state.generation, state.status) == ("g1", "done")
    await backend.hook_done("k", generation="g1")
    assert await claim(backend, "k", "g2") is True
    details = await backend.details("k")
    assert details is not None and details.hook == "none"
    await claim(backend, "lapsed", "g1", hook="chat", lease_ms=1)
    await anyio.sleep(0.01)
    created, state = await backend.claim(
        "lapsed", generation="g2", owner="me", lease_ms=LEASE_MS, retention_ms=RETENTION_MS
    )
    assert not created and state.status == "active" and state.lease_expired


async def test_the_hook_index_lists_due_keys_and_drops_by_mark(backend: Backend) -> None:
    first = await backend.owe_hooks(["a", "b"], delay_ms=0)
    await backend.owe_hooks(["later"], delay_ms=60_000)
    due = await backend.due_hooks(limit=10)
    assert sorted(due) == [("a", first), ("b", first)]
    assert await backend.due_hooks(limit=1) in ([("a", first)], [("b", first)])
    await anyio.sleep(0.002)
    again = await backend.owe_hooks(["b"], delay_ms=0)
    await backend.drop_hooks([("a", first), ("b", first)])
    assert await backend.due_hooks(limit=10) == [("b", again)]
    await backend.drop_hooks([("b", again)])
    assert await backend.due_hooks(limit=10) == []


async def test_a_generation_nobody_reads_is_abandoned_as_a_cancel_would(
    backend: Backend, notes: list[tuple[str, Notification]]
) -> None:
    for key in ("unread", "read", "ended"):
        await claim(backend, key, "g1")
        await backend.watch(key, "events")
        await backend.watch(key, "control")
    await end(backend, "ended", "g1")
    await backend.mark_read(["read", "ended", "missing"], hold_ms=60_000)
    assert await backend.states(["missing"]) == [None]
    items = [Unread(key, "g1", 0) for key in ("unread", "read", "ended")]
    await anyio.sleep(0.01)
    ended = await backend.abandon_unread(
        [*items, Unread("unread", "other", 0)], data='{"reason":"abandoned"}', retention_ms=1000
    )
    assert ended == [True, False, False, False]
    (state,) = await backend.states(["unread"])
    assert state is not None and (state.status, state.last_seq) == ("cancelled", 1)
    page = await backend.read("unread", generation="g1", after_seq=0, limit=10)
    assert page is not None
    assert page.events == [StreamEvent("g1", 1, "cancelled", '{"reason":"abandoned"}')]

    async def told() -> bool:
        return len([n for k, n in notes if k == "unread"]) >= 2

    await eventually(told)
    unread = [n for k, n in notes if k == "unread"]
    assert EventBatch(page.events) in unread and Control("cancel", "g1") in unread
    assert await backend.abandon_unread(items[1:2], data="{}", retention_ms=1000) == [False]
