"""The backend contract: both backends must behave the same, event for event."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from fastapi_streamhub import StreamEvent
from fastapi_streamhub.backends import Append, Backend, Control, EventBatch, Lease, Notification
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

LEASE_MS = 60_000
RETENTION_MS = 60_000


class Inbox:
    def __init__(self) -> None:
        self.notes: list[tuple[str, Notification]] = []
        self.resyncs = 0
        self._arrived = anyio.Event()

    def on_note(self, key: str, note: Notification) -> None:
        self.notes.append((key, note))
        self._arrived.set()
        self._arrived = anyio.Event()

    def on_resync(self) -> None:
        self.resyncs += 1

    async def wait_for(self, count: int) -> list[tuple[str, Notification]]:
        with anyio.fail_after(5):
            while len(self.notes) < count:
                await self._arrived.wait()
        return self.notes


@pytest.fixture(params=["memory", "redis", "cluster", "valkey"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The contract runs on Valkey too (a `redis://` server of another make)."""
    return str(request.param)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def backend(make_backend: Callable[[], Backend], inbox: Inbox) -> AsyncIterator[Backend]:
    backend = make_backend()
    await backend.open(inbox.on_note, inbox.on_resync)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        yield backend
        group.cancel_scope.cancel()
    await backend.aclose()


def events(generation: str, first: int, *items: tuple[str | None, str]) -> list[StreamEvent]:
    return [StreamEvent(generation, first + i, name, data) for i, (name, data) in enumerate(items)]


async def claim(backend: Backend, key: str, generation: str, *, lease_ms: int = LEASE_MS) -> bool:
    created, _ = await backend.claim(
        key, generation=generation, owner="me", lease_ms=lease_ms, retention_ms=RETENTION_MS
    )
    return created


async def read(
    backend: Backend, key: str, generation: str, *, after: int = 0, limit: int = 10
) -> list[StreamEvent] | None:
    page = await backend.read(key, generation=generation, after_seq=after, limit=limit)
    return None if page is None else page.events


async def append(backend: Backend, key: str, generation: str, batch: list[StreamEvent]) -> object:
    (outcome,) = await backend.append_many(
        [Append(key, generation, batch)], retention_ms=RETENTION_MS
    )
    return outcome


async def test_claim_is_exclusive_while_the_lease_holds(backend: Backend) -> None:
    assert await claim(backend, "k", "g1") is True
    assert await claim(backend, "k", "g2") is False
    (state,) = await backend.states(["k"])
    assert state is not None
    assert (state.status, state.generation, state.owner, state.last_seq) == (
        "active",
        "g1",
        "me",
        0,
    )


async def test_appended_events_read_back_exactly(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    batch = events("g1", 1, (None, '"a\\r\\nb"'), ("tool", '{"x":1}'), (None, '""'))
    assert await append(backend, "k", "g1", batch) == "ok"
    assert await read(backend, "k", "g1") == batch
    assert await read(backend, "k", "g1", after=2) == batch[2:]
    assert await read(backend, "k", "g1", limit=2) == batch[:2]


async def test_retried_append_is_not_duplicated(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    first = events("g1", 1, (None, '"a"'), (None, '"b"'))
    await append(backend, "k", "g1", first)
    retried = [*first, *events("g1", 3, (None, '"c"'))]
    assert await append(backend, "k", "g1", retried) == "ok"
    stored = await read(backend, "k", "g1")
    assert [e.data for e in stored] == ['"a"', '"b"', '"c"']


async def test_write_of_a_superseded_generation_is_refused(backend: Backend) -> None:
    await claim(backend, "k", "old", lease_ms=1)
    await anyio.sleep(0.01)
    assert await claim(backend, "k", "new") is True
    assert await append(backend, "k", "old", events("old", 1, (None, '"x"'))) == "stale"
    outcomes = await backend.refresh_many(
        [Lease("k", "old"), Lease("k", "new")], lease_ms=LEASE_MS, retention_ms=1000
    )
    assert outcomes == ["stale", "ok"]
    assert await read(backend, "k", "new") == []
    assert await read(backend, "k", "old") is None


async def test_terminal_event_ends_the_session(backend: Backend) -> None:
    await claim(backend, "k", "g1")
    await append(backend, "k", "g1", events("g1", 1, (None, '"a"'), ("done", "{}")))
    (state,) = await backend.states(["k"])
    assert state is not None and (state.status, state.last_seq) == ("done", 2)
    assert await append(backend, "k", "g1", events("g1", 3, (None, '"late"'))) == "done"
    assert await claim(backend, "k", "g2") is True


async def test_cancel_stores_the_terminal_and_signals_the_owner(
    backend: Backend, inbox: Inbox
) -> None:
    await claim(backend, "k", "g1")
    await backend.watch("k", "events")
    await backend.watch("k", "control")
    await append(backend, "k", "g1", events("g1", 1, (None, '"a"')))
    cancelled, state = await backend.finish(
        "k",
        generation=None,
        event="cancelled",
        data='{"reason":"cancelled"}',
        retention_ms=RETENTION_MS,
        only_if_lapsed=False,
    )
    assert cancelled and state is not None and state.status == "cancelled"
    notes = await inbox.wait_for(3)
    assert notes[0] == ("k", EventBatch(events("g1", 1, (None, '"a"'))))
    assert notes[1] == ("k", EventBatch(events("g1", 2, ("cancelled", '{"reason":"cancelled"}'))))
    assert notes[2] == ("k", Control("cancel", "g1"))
    assert await append(backend, "k", "g1", events("g1", 2, (None, '"b"'))) == "cancelled"


async def test_lapsed_finish_waits_for_the_lease(backend: Backend) -> None:
    await claim(backend, "k", "g1", lease_ms=300)
    lost = '{"reason":"producer_lost"}'
    finished, _ = await backend.finish(
        "k", generation="g1", event="error", data=lost, retention_ms=1000, only_if_lapsed=True
    )
    assert finished is False
    with anyio.fail_after(5):
        while not finished:
            await anyio.sleep(0.05)
            finished, state = await backend.finish(
                "k",
                generation="g1",
                event="error",
                data=lost,
                retention_ms=1000,
                only_if_lapsed=True,
            )
    assert state is not None and state.status == "error"
    stored = await read(backend, "k", "g1")
    assert stored == events("g1", 1, ("error", lost))


async def test_release_clears_the_owner_and_tells_waiters(backend: Backend, inbox: Inbox) -> None:
    await claim(backend, "k", "g1")
    await backend.watch("k", "control")
    await backend.release("k", generation="g1")
    assert await inbox.wait_for(1) == [("k", Control("stopped", "g1"))]
    (state,) = await backend.states(["k"])
    assert state is not None and state.owner == ""


async def test_unwatched_keys_are_not_delivered(backend: Backend, inbox: Inbox) -> None:
    await claim(backend, "quiet", "g1")
    await claim(backend, "loud", "g1")
    await backend.watch("loud", "events")
    await append(backend, "quiet", "g1", events("g1", 1, (None, '"q"')))
    await append(backend, "loud", "g1", events("g1", 1, (None, '"l"')))
    notes = await inbox.wait_for(1)
    assert [key for key, _ in notes] == ["loud"]


async def test_states_and_remove(backend: Backend) -> None:
    await claim(backend, "a", "g1")
    states = await backend.states(["a", "missing"])
    assert states[0] is not None and states[1] is None
    assert await backend.remove("a") is True
    assert await backend.states(["a"]) == [None]
    assert await backend.remove("a") is False


async def test_keys_with_braces_never_share_storage(backend: Backend) -> None:
    keys = ["a}{b", "a%7Db", "{a}", "a", "a:*", " a\x00", "ключ"]
    for index, key in enumerate(keys):
        await claim(backend, key, f"g{index}")
        await append(backend, key, f"g{index}", events(f"g{index}", 1, (None, f'"{index}"')))
    for index, key in enumerate(keys):
        stored = await read(backend, key, f"g{index}")
        assert stored is not None and [e.data for e in stored] == [f'"{index}"']


async def test_writes_of_many_streams_in_one_call_are_answered_each(backend: Backend) -> None:
    await claim(backend, "mine", "g1")
    await claim(backend, "taken", "new")
    await claim(backend, "ended", "g1")
    await append(backend, "ended", "g1", events("g1", 1, ("done", "{}")))
    outcomes = await backend.append_many(
        [
            Append("mine", "g1", events("g1", 1, (None, '"a"'))),
            Append("taken", "old", events("old", 1, (None, '"b"'))),
            Append("ended", "g1", events("g1", 2, (None, '"c"'))),
            Append("mine", "g1", events("g1", 2, (None, '"d"')), metadata='{"m":1}'),
        ],
        retention_ms=RETENTION_MS,
    )
    assert outcomes == ["ok", "stale", "done", "ok"]
    stored = await read(backend, "mine", "g1")
    assert stored is not None
    assert [e.data for e in stored] == ['"a"', '"d"']
    (state,) = await backend.states(["mine"])
    assert state is not None
    assert state.metadata == '{"m":1}'


async def test_a_refused_write_ends_only_its_own_stream(redis_url: str) -> None:
    from fastapi_streamhub.backends.redis import RedisBackend

    backend = RedisBackend.from_url(redis_url)
    inbox = Inbox()
    await backend.open(inbox.on_note, inbox.on_resync)
    try:
        await claim(backend, "broken", "g1")
        await claim(backend, "fine", "g1")
        async with backend._client as raw:
            await raw.set("streamhub:{broken}:events", "not a stream")
        outcomes = await backend.append_many(
            [
                Append("broken", "g1", events("g1", 1, (None, '"x"'))),
                Append("fine", "g1", events("g1", 1, (None, '"y"'))),
            ],
            retention_ms=RETENTION_MS,
        )
        assert outcomes == ["failed", "ok"]
        stored = await read(backend, "fine", "g1")
        assert stored == events("g1", 1, (None, '"y"'))
    finally:
        await backend.aclose()


async def test_claims_made_together_each_get_their_own_answer(backend: Backend) -> None:
    """A burst of starts: distinct keys are all created, and of the calls racing for
    one key exactly one wins, whatever the backend does to send them together."""
    results: dict[str, bool] = {}
    winners: list[str] = []

    async def claim_distinct(key: str) -> None:
        results[key] = await claim(backend, key, f"g-{key}")

    async def claim_shared(generation: str) -> None:
        if await claim(backend, "shared", generation):
            winners.append(generation)

    async with anyio.create_task_group() as group:
        for i in range(60):
            group.start_soon(claim_distinct, f"k{i}")
            if i % 6 == 0:
                group.start_soon(claim_shared, f"s{i}")
    assert results == {f"k{i}": True for i in range(60)}
    assert len(winners) == 1
    states = await backend.states([f"k{i}" for i in range(60)] + ["shared"])
    assert [s.generation if s else None for s in states] == [
        *(f"g-k{i}" for i in range(60)),
        winners[0],
    ]


async def test_claims_made_together_all_fail_when_redis_is_away() -> None:
    from fastapi_streamhub._errors import BackendUnavailableError
    from fastapi_streamhub.backends.redis import RedisBackend
    from tests.support._process import free_port

    backend = RedisBackend.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    failures: list[BaseException] = []

    async def try_claim(key: str) -> None:
        try:
            await claim(backend, key, "g")
        except BackendUnavailableError as exc:
            failures.append(exc)

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(try_claim, f"k{i}")
    finally:
        await backend.aclose()
    assert len(failures) == 20


async def test_scripts_are_loaded_at_open_so_a_first_burst_meets_no_noscript(
    redis_url: str,
) -> None:
    from fastapi_streamhub.backends.redis import RedisBackend

    backend = RedisBackend.from_url(redis_url)
    async with backend._client as raw:
        await raw.script_flush()
    inbox = Inbox()
    await backend.open(inbox.on_note, inbox.on_resync)
    try:
        async with backend._client as raw:
            shas = list(backend._scripts.sha.values())
            assert await raw.script_exists(*shas) == [True] * len(shas)
    finally:
        await backend.aclose()


async def test_a_hub_starts_while_redis_is_away_and_works_once_it_is_back(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    from fastapi_streamhub import StreamHub

    server = make_redis_server()
    server.stop()
    hub = StreamHub.from_url(server.url, socket_timeout_s=1)
    async with hub:
        server.restart()
        producer, created = await hub.register("after-outage")
        assert created
        await producer.publish("x")
        assert await producer.close() == "done"
        (state,) = await hub.backend.states(["after-outage"])
        assert state is not None and (state.status, state.last_seq) == ("done", 2)


# ----------------------------------------------------------------------------------------
# Generations claimed for a job queue worker: pending until one worker adopts them.
# ----------------------------------------------------------------------------------------


async def claim_pending(backend: Backend, key: str, generation: str, *, deadline_ms: int) -> bool:
    created, _ = await backend.claim(
        key,
        generation=generation,
        owner="",
        lease_ms=deadline_ms,
        retention_ms=RETENTION_MS,
        pending=True,
    )
    return created


async def adopt(backend: Backend, key: str, generation: str, token: str) -> str:
    return await backend.adopt(
        key,
        generation=generation,
        owner=f"worker-{token}",
        token=token,
        lease_ms=LEASE_MS,
        retention_ms=RETENTION_MS,
    )


async def test_a_pending_generation_holds_the_key_without_an_owner(backend: Backend) -> None:
    assert await claim_pending(backend, "k", "g1", deadline_ms=LEASE_MS) is True
    (state,) = await backend.states(["k"])
    assert state is not None
    assert (state.status, state.generation, state.owner) == ("active", "g1", "")
    assert state.pending is True and state.lease_expired is False
    assert await claim(backend, "k", "g2") is False


async def test_one_worker_adopts_a_pending_generation(backend: Backend) -> None:
    await claim_pending(backend, "k", "g1", deadline_ms=LEASE_MS)
    assert await adopt(backend, "k", "g1", "first") == "ok"
    assert await adopt(backend, "k", "g1", "second") == "adopted"
    assert await adopt(backend, "k", "g1", "first") == "ok"  # a retry of the same adoption
    (state,) = await backend.states(["k"])
    assert state is not None
    assert (state.owner, state.pending, state.lease_expired) == ("worker-first", False, False)
    assert await append(backend, "k", "g1", events("g1", 1, (None, '"a"'))) == "ok"
    assert await backend.refresh_many(
        [Lease("k", "g1")], lease_ms=LEASE_MS, retention_ms=RETENTION_MS
    ) == ["ok"]


async def test_adopt_refuses_what_is_not_a_waiting_generation(backend: Backend) -> None:
    assert await adopt(backend, "missing", "g1", "t") == "stale"
    await claim_pending(backend, "k", "g1", deadline_ms=LEASE_MS)
    assert await adopt(backend, "k", "other", "t") == "stale"
    await claim(backend, "own", "g1")
    assert await adopt(backend, "own", "g1", "t") == "adopted"
    await backend.finish(
        "k",
        generation="g1",
        event="cancelled",
        data='{"reason":"cancelled"}',
        retention_ms=RETENTION_MS,
        only_if_lapsed=False,
    )
    assert await adopt(backend, "k", "g1", "t") == "cancelled"


async def test_a_pending_generation_expires_at_its_start_deadline(backend: Backend) -> None:
    await claim_pending(backend, "k", "g1", deadline_ms=200)

    async def lapsed() -> bool:
        (state,) = await backend.states(["k"])
        return state is not None and state.lease_expired

    await eventually(lapsed, timeout_s=5)
    assert await adopt(backend, "k", "g1", "late") == "expired"
    (state,) = await backend.states(["k"])
    assert state is not None and state.pending is True
    assert await claim(backend, "k", "g2") is True
    (state,) = await backend.states(["k"])
    assert state is not None and (state.generation, state.pending) == ("g2", False)
    assert await adopt(backend, "k", "g2", "t") == "adopted"


async def test_a_replay_page_is_bounded_by_bytes_too(backend: Backend) -> None:
    """No replay is one unbounded reply: a page stops at `max_bytes` of data, but always
    holds one event, however large."""
    await claim(backend, "k", "g1")
    batch = events("g1", 1, *((None, '"' + "x" * 98 + '"'),) * 4)
    await append(backend, "k", "g1", batch)

    async def page(after: int, max_bytes: int) -> list[int]:
        found = await backend.read(
            "k", generation="g1", after_seq=after, limit=10, max_bytes=max_bytes
        )
        assert found is not None and found.last_seq == 4
        return [e.seq for e in found.events]

    assert await page(0, 250) == [1, 2]
    assert await page(0, 99) == [1]
    assert await page(2, 10_000) == [3, 4]
