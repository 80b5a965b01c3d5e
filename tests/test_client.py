"""`fastapi_streamhub.client` against real uvicorn instances: every event exactly once.

Connections are cut for real, by a TCP proxy between the client and the app
(`tests/support/tcp_proxy.py`) or by killing the instance the client reads from; the
app is `tests/apps/generator_app.py`, whose tokens are `token(0)`, `token(1)`, ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import httpx
import pytest

from fastapi_streamhub import InvalidCursorError, StreamEvent
from fastapi_streamhub.client import (
    NotAllowedError,
    ReconnectFailedError,
    ResumableStream,
    StreamClient,
    StreamClientError,
    StreamConflictError,
    StreamNotFoundError,
    StreamRequestError,
)
from tests.apps.generator_app import token
from tests.apps.scripted_sse_app import G as SCRIPTED
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.generator_app:create_app"
FAST = {"backoff_initial_s": 0.01}

OnEvent = Callable[[StreamEvent], Awaitable[None]]


async def read_all(stream: ResumableStream, on_event: OnEvent | None = None) -> list[StreamEvent]:
    """Every event the client yields, to its end (bounded)."""
    events: list[StreamEvent] = []
    with anyio.fail_after(30):
        async with stream:
            async for event in stream:
                events.append(event)
                if on_event is not None:
                    await on_event(event)
    return events


def assert_exact(events: list[StreamEvent], count: int, terminal: str = "done") -> None:
    """The generator's `count` tokens, then `terminal`: one generation, seq 1.., no repeat."""
    assert [e.value for e in events[:-1]] == [token(i) for i in range(count)]
    assert [e.event for e in events[:-1]] == [None] * count
    assert [e.seq for e in events] == list(range(1, count + 2))
    assert len({e.generation for e in events}) == 1
    assert events[-1].event == terminal


@pytest.fixture(params=["memory", "redis"])
def server(
    request: pytest.FixtureRequest, make_uvicorn_server: Callable[..., UvicornServer]
) -> UvicornServer:
    """One instance of the generator app, on either backend."""
    env = (
        {"TEST_REDIS_URL": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    )
    return make_uvicorn_server(APP, factory=True, env=env)


@pytest.fixture
def two_instances(
    redis_url: str, make_uvicorn_server: Callable[..., UvicornServer]
) -> tuple[UvicornServer, UvicornServer]:
    """Two instances on one Redis; a producer that dies is known lost after about 1.5 s."""
    env = {"TEST_REDIS_URL": redis_url, "TEST_LEASE_S": "1"}
    return (
        make_uvicorn_server(APP, factory=True, env=env),
        make_uvicorn_server(APP, factory=True, env=env),
    )


async def runs(server: UvicornServer, run_id: str) -> dict[str, int]:
    async with server.client() as http:
        record: dict[str, int] = (await http.get(f"/debug/runs/{run_id}")).json()
        return record


# -- dropped connections ------------------------------------------------------------------


async def test_connections_cut_mid_event_lose_and_repeat_nothing(server: UvicornServer) -> None:
    async with TcpProxy(server.port) as proxy, StreamClient(proxy.base_url, **FAST) as client:
        proxy.cut_after_bytes(1000, connections=3)
        stream = client.start("/gen/cut", json={"count": 300, "delay_ms": 2})
        events = await read_all(stream)
    assert_exact(events, 300)
    assert stream.reconnects == 3
    assert proxy.connections == 4
    assert stream.last_event_id == events[-1].id


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
async def test_a_connection_aborted_mid_stream_resumes_exactly(
    server: UvicornServer, reset: bool
) -> None:
    async with TcpProxy(server.port) as proxy, StreamClient(proxy.base_url, **FAST) as client:

        async def cut_at_50(event: StreamEvent) -> None:
            if event.seq == 50:
                await proxy.cut(reset=reset)

        stream = client.start("/gen/abort", json={"count": 300, "delay_ms": 5})
        events = await read_all(stream, cut_at_50)
    assert_exact(events, 300)
    assert stream.reconnects == 1
    assert (await runs(server, "abort"))["starts"] == 1


async def test_a_resume_lands_on_another_instance_when_the_one_read_from_dies(
    two_instances: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_instances
    path = "/gen/handover"
    async with (
        StreamClient(b.base_url) as on_b,
        on_b.start(path, json={"count": 300, "delay_ms": 5}) as started,
    ):
        assert (await anext(started)).seq == 1  # the generation runs on B
    async with TcpProxy(a.port) as proxy, StreamClient(proxy.base_url, **FAST) as client:

        async def kill_a_at_50(event: StreamEvent) -> None:
            if event.seq == 50:
                proxy.upstream_port = b.port  # the load balancer's next pick
                await anyio.to_thread.run_sync(a.kill)

        stream = client.attach(path)
        events = await read_all(stream, kill_a_at_50)
    assert not a.running
    assert_exact(events, 300)
    assert stream.reconnects == 1
    assert await runs(b, "handover") == {"starts": 1, "yielded": 300, "finally": 1}


async def test_a_reader_away_while_a_new_generation_started_gets_reset_then_the_new_one(
    server: UvicornServer,
) -> None:
    path = "/gen/turns"
    second: list[StreamEvent] = []
    async with (
        TcpProxy(server.port) as proxy,
        StreamClient(proxy.base_url, **FAST) as client,
        StreamClient(server.base_url) as direct,
    ):

        async def next_turn_at_20(event: StreamEvent) -> None:
            if event.seq != 20 or event.generation == (second[0].generation if second else ""):
                return
            await proxy.cut()

            async def first_turn_done() -> bool:
                return (await direct.status(path)).status == "done"

            await eventually(first_turn_done)
            second.extend(await read_all(direct.start(path, json={"count": 30})))

        stream = client.start(path, json={"count": 100, "delay_ms": 5})
        events = await read_all(stream, next_turn_at_20)
    at = [e.event for e in events].index("reset")
    before, reset, after = events[:at], events[at], events[at + 1 :]
    assert [e.value for e in before] == [token(i) for i in range(len(before))]
    assert [e.seq for e in before] == list(range(1, len(before) + 1))
    assert 20 <= len(before) < 100
    assert_exact(second, 30)
    new = second[0].generation
    assert new != before[0].generation
    assert (reset.generation, reset.seq, reset.value) == (new, 0, {"generation": new})
    assert after == second
    assert stream.reconnects == 1


# -- cursors, 204, reset --------------------------------------------------------------------


async def test_resuming_from_a_cursor_204_at_the_end_and_reset_for_an_old_generation(
    server: UvicornServer,
) -> None:
    path = "/gen/cursor"
    async with StreamClient(server.base_url) as client:
        events = await read_all(client.start(path, json={"count": 5}))
        assert_exact(events, 5)
        assert await read_all(client.attach(path)) == events
        assert await read_all(client.attach(path, last_event_id=events[2].id)) == events[3:]
        finished = client.attach(path, last_event_id=events[-1].id)
        assert await read_all(finished) == []  # 204: already seen to its end
        assert finished.reconnects == 0

        second = await read_all(client.start(path, json={"count": 2}))
        assert_exact(second, 2)
        replaced = await read_all(client.attach(path, last_event_id=events[2].id))
    new = second[0].generation
    assert replaced[0] == StreamEvent(new, 0, "reset", f'{{"generation":"{new}"}}')
    assert replaced[1:] == second


# -- cancel, status ---------------------------------------------------------------------------


async def test_cancel_stops_the_generator_and_ends_the_stream_with_cancelled(
    server: UvicornServer,
) -> None:
    path = "/gen/stop"
    async with StreamClient(server.base_url) as client:
        results = []

        async def cancel_at_5(event: StreamEvent) -> None:
            if event.seq == 5:
                results.append(await client.cancel(path))

        events = await read_all(
            client.start(path, json={"count": 10_000, "delay_ms": 10}), cancel_at_5
        )
        status = await client.status(path)
        again = await client.cancel(path)
    [result] = results
    assert (result.key, result.cancelled, result.stopped) == ("gen:stop", True, True)
    assert result.status == status
    assert (status.status, status.producer_running, status.metadata) == ("cancelled", False, {})
    assert events[-1].event == "cancelled" and events[-1].value == {"reason": "cancelled"}
    assert events[-1].id == status.last_event_id
    assert [e.value for e in events[:-1]] == [token(i) for i in range(len(events) - 1)]
    assert (again.cancelled, again.stopped, again.status) == (False, True, status)
    record = await runs(server, "stop")
    assert record["finally"] == 1 and record["yielded"] < 10_000


async def test_status_of_a_running_stream(server: UvicornServer) -> None:
    path = "/gen/running"
    async with StreamClient(server.base_url) as client:
        async with client.start(path, json={"count": 10_000, "delay_ms": 10}) as stream:
            first = await anext(stream)
            status = await client.status(path)
        await client.cancel(path)
    assert (status.key, status.status, status.generation) == (
        "gen:running",
        "active",
        first.generation,
    )
    assert status.producer_running and status.last_seq >= 1


# -- errors ---------------------------------------------------------------------------------------


async def test_refusals_raise_errors_that_name_them(server: UvicornServer) -> None:
    async with server.client() as http:
        client = StreamClient(http=http)
        with pytest.raises(StreamNotFoundError) as missing:
            await read_all(client.attach("/gen/none"))
        assert (missing.value.status_code, missing.value.detail) == (
            404,
            "no stream under key 'gen:none'",
        )
        with pytest.raises(StreamNotFoundError):
            await client.status("/gen/none")
        with pytest.raises(StreamNotFoundError):
            await client.cancel("/gen/none")

        events = await read_all(client.start("/gen/known", json={"count": 2}))
        beyond = f"{events[0].generation}:9"
        replay = await read_all(client.attach("/gen/known", last_event_id=beyond))
        assert replay[0].event == "reset" and replay[1:] == events, "storage lost it: reset"
        with pytest.raises(InvalidCursorError):
            client.attach("/gen/known", last_event_id="not-a-cursor")

        with pytest.raises(StreamRequestError) as invalid:
            await read_all(client.start("/gen/bad", json={"count": "many"}))
        assert invalid.value.status_code == 422

        async with client.start("/exclusive/1", json={"count": 1000, "delay_ms": 10}) as running:
            await anext(running)
            with pytest.raises(StreamConflictError) as busy:
                await read_all(client.start("/exclusive/1", json={"count": 1}))
            assert busy.value.status_code == 409
        await client.cancel("/exclusive/1")
        await client.aclose()  # the caller's client stays open
        assert not http.is_closed


async def test_headers_carry_the_credentials_to_every_route(server: UvicornServer) -> None:
    path = "/private/1"
    async with StreamClient(server.base_url) as anonymous:
        with pytest.raises(NotAllowedError) as unauthenticated:
            await read_all(anonymous.start(path, json={"count": 1}))
        assert unauthenticated.value.status_code == 401
    bob = StreamClient(server.base_url, headers={"Authorization": "Bearer bob"})
    alice = StreamClient(server.base_url, headers={"Authorization": "Bearer alice"})
    async with bob, alice:
        async with bob.start(path, json={"count": 1000, "delay_ms": 10}) as stream:
            await anext(stream)
            with pytest.raises(NotAllowedError) as refused:
                await bob.cancel(path)
            assert refused.value.status_code == 403
            assert (await alice.cancel(path)).cancelled
            rest = [event async for event in stream]
        assert rest[-1].event == "cancelled"
        assert (await bob.status(path)).status == "cancelled"


async def test_reconnecting_is_bounded_and_the_cursor_survives_giving_up(
    server: UvicornServer,
) -> None:
    path = "/gen/gone"
    got: list[StreamEvent] = []
    async with TcpProxy(server.port) as proxy:

        async def go_away_at_10(event: StreamEvent) -> None:
            got.append(event)
            if event.seq == 10:
                proxy.refuse()
                await proxy.cut()

        async with StreamClient(proxy.base_url, max_reconnects=3, **FAST) as client:
            with pytest.raises(ReconnectFailedError) as gave_up:
                await read_all(
                    client.start(path, json={"count": 100, "delay_ms": 5}), go_away_at_10
                )
        assert gave_up.value.attempts == 3
        assert isinstance(gave_up.value.__cause__, httpx.TransportError)
        cursor = gave_up.value.last_event_id
        assert cursor == got[-1].id

        timed = StreamClient(
            proxy.base_url, max_reconnects=10_000, max_reconnect_time_s=0.2, **FAST
        )
        async with timed:
            with pytest.raises(ReconnectFailedError) as ran_out:
                await read_all(timed.attach(path, last_event_id=cursor))
        assert ran_out.value.last_event_id == cursor and ran_out.value.attempts < 10_000

        proxy.refuse(False)
        async with StreamClient(proxy.base_url) as client:
            rest = await read_all(client.attach(path, last_event_id=cursor))
    assert_exact(got + rest, 100)


async def test_a_start_that_got_no_answer_is_not_repeated(server: UvicornServer) -> None:
    async with TcpProxy(server.port) as proxy, StreamClient(proxy.base_url, **FAST) as client:
        proxy.refuse()
        with pytest.raises(StreamClientError, match="may have started"):
            await read_all(client.start("/gen/unsure", json={"count": 1}))
        assert proxy.connections == 1


async def test_a_start_that_could_not_connect_is_retried_then_given_up() -> None:
    async with TcpProxy(1) as proxy:
        port = proxy.port
    client = StreamClient(f"http://127.0.0.1:{port}", max_reconnects=2, backoff_initial_s=0.01)
    async with client:
        with pytest.raises(ReconnectFailedError) as gave_up:
            await read_all(client.start("/gen/nowhere", json={"count": 1}))
    assert gave_up.value.attempts == 2 and gave_up.value.last_event_id is None
    assert isinstance(gave_up.value.__cause__, httpx.ConnectError)


# -- the producer lost, and streams that break the protocol ---------------------------------


async def test_a_lost_producer_ends_the_stream_with_its_error_and_no_reconnection(
    two_instances: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_instances
    path = "/gen/orphan"
    async with (
        StreamClient(b.base_url) as on_b,
        on_b.start(path, json={"count": 10_000, "delay_ms": 10}) as started,
    ):
        await anext(started)
    async with StreamClient(a.base_url, **FAST) as client:

        async def kill_producer_at_10(event: StreamEvent) -> None:
            if event.seq == 10:
                await anyio.to_thread.run_sync(b.kill)

        stream = client.attach(path)
        events = await read_all(stream, kill_producer_at_10)
    last = events[-1]
    assert (last.event, last.value["reason"]) == ("error", "producer_lost")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert stream.reconnects == 0


@pytest.fixture
def scripted(make_uvicorn_server: Callable[..., UvicornServer]) -> UvicornServer:
    return make_uvicorn_server("tests.apps.scripted_sse_app:app")


async def script_run(
    server: UvicornServer, name: str
) -> tuple[list[StreamEvent], list[str | None], int]:
    async with StreamClient(server.base_url, **FAST) as client:
        stream = client.attach(f"/s/{name}")
        events = await read_all(stream)
        async with server.client() as http:
            cursors: list[str | None] = (await http.get(f"/requests/{name}")).json()
    return events, cursors, stream.reconnects


def ids(events: list[StreamEvent]) -> list[tuple[str | None, str]]:
    return [(e.event, e.id) for e in events]


async def test_the_unstored_error_that_repeats_the_last_id_is_the_end(
    scripted: UvicornServer,
) -> None:
    events, cursors, reconnects = await script_run(scripted, "unstored")
    g = SCRIPTED
    assert ids(events) == [(None, f"{g}:1"), (None, f"{g}:2"), ("error", f"{g}:2")]
    assert events[-1].value["reason"] == "unavailable"
    assert (cursors, reconnects) == ([None], 0)


async def test_events_repeated_by_the_server_are_yielded_once(scripted: UvicornServer) -> None:
    events, cursors, reconnects = await script_run(scripted, "replay")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.value for e in events] == ["a", "b", "c", "d", {}]
    assert (cursors, reconnects) == ([None, f"{SCRIPTED}:3"], 1)


async def test_a_gap_resumes_from_the_last_event_before_it(scripted: UvicornServer) -> None:
    events, cursors, reconnects = await script_run(scripted, "gap")
    assert [e.value for e in events] == ["a", "b", "c", {}]
    assert (cursors, reconnects) == ([None, f"{SCRIPTED}:1"], 1)


async def test_text_runs_of_a_compacted_stream_are_taken_whole(scripted: UvicornServer) -> None:
    events, cursors, reconnects = await script_run(scripted, "compacted")
    assert [(e.seq, e.value) for e in events] == [(1, "a"), (4, "bcd"), (6, "ef"), (7, {})]
    assert (cursors, reconnects) == ([None], 0)


async def test_a_lagged_reader_ended_by_the_server_resumes(scripted: UvicornServer) -> None:
    events, cursors, reconnects = await script_run(scripted, "lagged")
    assert [e.value for e in events] == ["a", "b", "c", {}]
    assert (cursors, reconnects) == ([None, f"{SCRIPTED}:2"], 1)


async def test_503_is_retried(scripted: UvicornServer) -> None:
    events, cursors, reconnects = await script_run(scripted, "busy")
    assert [e.value for e in events] == ["a", {}]
    assert (cursors, reconnects) == ([None, None], 1)


async def test_an_answer_that_is_not_an_event_stream_is_refused(scripted: UvicornServer) -> None:
    with pytest.raises(StreamRequestError, match="not an event stream"):
        await script_run(scripted, "json")
