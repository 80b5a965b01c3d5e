"""The test infrastructure itself: real servers start, fail, pause and stop as promised,
and the SSE reader parses exactly what a browser would."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest
import redis.exceptions

from tests.support import tiny_app
from tests.support._process import ServerStartError
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, SSEParser, read_events, read_stream
from tests.support.uvicorn_server import UvicornServer

TINY_APP = "tests.support.tiny_app:app"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- Redis ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_redis_server_is_private_and_empty(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.port != 6379
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    async with redis_server.client() as r:
        assert await r.dbsize() == 0
        await r.set("k", "v")
        assert await r.get("k") == "v"


def test_redis_pause_and_resume(redis_server: RedisServer) -> None:
    redis_server.pause()
    assert not redis_server.ping(timeout_s=0.2)
    with (
        redis_server.sync_client(socket_timeout=0.2) as r,
        pytest.raises(redis.exceptions.TimeoutError),
    ):
        r.ping()
    redis_server.resume()
    assert redis_server.ping()


def test_redis_restart_after_crash_keeps_aof_data(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server(appendonly=True)
    port, pid = server.port, server.pid
    with server.sync_client() as r:
        r.xadd("stream", {"seq": "1"}, id="1-1")
    server.kill()
    assert _gone(pid)
    assert not server.ping(timeout_s=0.2)
    server.restart()
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    with server.sync_client() as r:
        assert r.xrange("stream") == [("1-1", {"seq": "1"})]


def test_redis_without_aof_loses_data_on_restart(redis_server: RedisServer) -> None:
    with redis_server.sync_client() as r:
        r.set("k", "v")
    redis_server.restart()
    with redis_server.sync_client() as r:
        assert r.get("k") is None


def test_redis_stop_and_close_leave_nothing_behind() -> None:
    with RedisServer() as server:
        pid, data_dir = server.pid, server.dir
        server.pause()  # A paused server must still stop on SIGTERM.
        server.stop(timeout_s=5)
        assert _gone(pid)
        assert "Ready to accept connections" in server.logs()
    assert not data_dir.exists()
    server.close()  # Twice is fine.


def test_redis_bad_option_fails_fast_with_its_log() -> None:
    with (
        pytest.raises(ServerStartError, match="no-such-option"),
        RedisServer(extra_args=["--no-such-option", "1"]),
    ):
        pass


# -- uvicorn --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_server() -> Iterator[UvicornServer]:
    with UvicornServer(TINY_APP) as server:
        yield server


@pytest.mark.anyio
async def test_uvicorn_server_passes_env_and_stops(
    make_uvicorn_server: Callable[..., UvicornServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMHUB_REDIS_URL", "redis://127.0.0.1:6379/0")  # Must not leak.
    server = make_uvicorn_server(
        "tests.support.tiny_app:create_app", factory=True, env={"TINY_APP_GREETING": "hi"}
    )
    async with server.client() as http:
        answer = (await http.get("/env")).json()
    assert answer == {"pid": server.pid, "STREAMHUB_REDIS_URL": None, "TINY_APP_GREETING": "hi"}
    server.stop(timeout_s=5)
    assert _gone(answer["pid"])
    assert "Uvicorn running on" in server.logs()


@pytest.mark.anyio
async def test_uvicorn_pause_resume_and_kill() -> None:
    with UvicornServer(TINY_APP) as server:
        server.pause()
        async with server.client(timeout=0.3) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/")
            server.resume()
            assert (await http.get("/")).text == "ok"
        pid = server.pid
        server.kill()
        assert _gone(pid)
        server.restart()
        async with server.client() as http:
            assert (await http.get("/")).text == "ok"


def test_uvicorn_import_error_fails_fast_with_its_log() -> None:
    with (
        pytest.raises(ServerStartError, match="no_such_module"),
        UvicornServer("tests.support.no_such_module:app"),
    ):
        pass


# -- SSE ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_read_events_is_exact_and_stops_at_the_terminal_event(
    tiny_server: UvicornServer,
) -> None:
    async with tiny_server.client() as http:
        stream = await read_stream(http, "GET", "/events", timeout_s=5)
    assert stream.status_code == 200
    assert stream.retry == 1500
    assert "ping" in stream.comments
    assert stream.events == [
        SSE("message", json.dumps(tiny_app.TRICKY_VALUES[0]), "g:1"),
        SSE("tool", json.dumps(tiny_app.TRICKY_VALUES[1]), "g:2"),
        SSE("message", '""', "g:3"),
        SSE("message", "line1\nline2", "g:3", has_id=False),
        SSE("message", json.dumps(tiny_app.TRICKY_VALUES[3], ensure_ascii=False), "g:4"),
        SSE("done", "{}", "g:5"),
    ]
    values = [event.json() for event in stream.events if event.has_id][:-1]
    assert values == tiny_app.TRICKY_VALUES
    assert values[0]["text"] == "a\r\nb"


@pytest.mark.anyio
async def test_read_events_limit_headers_json_and_params(tiny_server: UvicornServer) -> None:
    async with tiny_server.client() as http:
        first = await read_events(http, "GET", "/events", limit=1)
        echoed = await read_events(
            http,
            "POST",
            "/echo",
            json={"text": "hi"},
            headers={"Last-Event-ID": "g:7"},
            params={"q": "1"},
        )
    assert [event.id for event in first] == ["g:1"]
    assert [event.json() for event in echoed] == [
        {"body": {"text": "hi"}, "cursor": "g:7"},
        {"q": "1"},
    ]


@pytest.mark.anyio
async def test_keepalive_comments_are_not_events_and_timeouts_are_bounded(
    tiny_server: UvicornServer,
) -> None:
    async with tiny_server.client() as http:
        with anyio.fail_after(5), pytest.raises(TimeoutError, match=r"s:1"):
            await read_events(http, "GET", "/silent", limit=2, timeout_s=0.5)


@pytest.mark.anyio
async def test_read_stream_reports_non_sse_answers(tiny_server: UvicornServer) -> None:
    async with tiny_server.client() as http:
        missing = await read_stream(http, "GET", "/missing")
        finished = await read_stream(http, "GET", "/finished")
        with pytest.raises(AssertionError, match="404"):
            await read_events(http, "GET", "/missing")
    assert (missing.status_code, json.loads(missing.body)) == (404, {"detail": "unknown stream"})
    assert (finished.status_code, finished.events, finished.body) == (204, [], b"")


def _parse(*chunks: str) -> tuple[SSEParser, list[SSE]]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return parser, events + parser.close()


def test_parser_handles_every_line_ending_across_chunk_boundaries() -> None:
    text = "\ufeffdata: a\r\n\r\nid: 2\rdata:b\r\rdata: c\n\n"
    expected = [
        SSE("message", "a", "", has_id=False),
        SSE("message", "b", "2"),
        SSE("message", "c", "2", has_id=False),
    ]
    assert _parse(text)[1] == expected
    assert _parse(*text)[1] == expected  # One character per chunk.
    assert _parse("data: x\r\r")[1] == [SSE("message", "x", "", has_id=False)]


def test_parser_dispatches_no_phantom_events() -> None:
    parser, events = _parse(
        "retry: 300\r\n\r\nid: g:1\r\ndata: 1\r\n\r\n: ping\r\n\r\nid: g:2\r\n\r\n"
    )
    assert events == [SSE("message", "1", "g:1")]
    assert (parser.retry, parser.last_event_id, parser.comments) == (300, "g:2", ["ping"])


def test_parser_drops_an_unterminated_event_and_ignores_bad_fields() -> None:
    parser, events = _parse("retry: 1x\nid: a\0b\nevent\ndata\n\ndata: cut off")
    assert events == [SSE("message", "", "", has_id=False)]
    assert parser.retry is None
