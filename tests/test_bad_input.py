"""Hostile and broken input through real uvicorn servers, on both backends.

Cursors (header and query) that are malformed, oversized, negative, ahead of the
stream or of another generation; stream keys with characters that mean something
to Redis, to URLs or to nobody; producers that yield what cannot be sent or raise.
Every case has one documented answer, and none of them is a 500, a silent full
replay, or a message that shows internals to the client.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

from fastapi_streamhub import StreamHub, UnsupportedChunkError
from tests.apps.hostile_app import BAD_MODES, SECRET
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_events, read_stream
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.hostile_app:create_app"
MAX_EVENT_BYTES = 1000
_ids = itertools.count()


@dataclass(frozen=True)
class Deployment:
    server: UvicornServer
    redis: RedisServer | None


@pytest.fixture(scope="module", params=["memory", "redis"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One server per backend for the whole module: each test uses its own keys."""
    with ExitStack() as stack:
        env = {"TEST_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES)}
        redis = None
        if request.param == "redis":
            redis = stack.enter_context(RedisServer())
            env["TEST_REDIS_URL"] = redis.url
        server = stack.enter_context(UvicornServer(APP, factory=True, env=env, ready_path="/docs"))
        yield Deployment(server, redis)
        print(f"----- uvicorn log -----\n{server.logs()[-8000:]}")


@pytest.fixture
def server(deployment: Deployment) -> UvicornServer:
    return deployment.server


def fresh(prefix: str = "r") -> str:
    return f"{prefix}{next(_ids)}"


def generation_of(event: SSE) -> str:
    return event.id.rpartition(":")[0]


def assert_json_error(response: httpx.Response, status: int) -> str:
    """The response is `status` with a JSON body `{"detail": <str>}`; returns the detail."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str), body
    return str(body["detail"])


# ----------------------------------------------------------------------------------------
# Cursors
# ----------------------------------------------------------------------------------------

# `{gen}` is replaced by the stream's current generation; the stream has 5 events + done.
MALFORMED = [
    "garbage",
    "",
    "{gen}",
    "{gen}:",
    ":1",
    ":",
    "{gen}:1:2",
    "{gen}::1",
    "{gen}:01",
    "{gen}:00",
    "{gen}: 1",
    "{gen}:+1",
    "{gen}:1.0",
    "{gen}:1e3",
    "{gen}:0x1",
    "{gen}:1_0",
    "{gen}:\u0661",  # ARABIC-INDIC DIGIT ONE: a digit to `int()`, not to the wire format
    "{gen}:\uff11",  # FULLWIDTH DIGIT ONE
    "{gen}/1",
    "{gen}.1",
    "a b:1",
    "*:1",
    "{{gen}}:1",
    "g\u00e9n:1",
    "null",
    "[1]",
]
OVERSIZED = [
    "a" * 10_000 + ":1",
    "{gen}:" + "1" * 10_000,
    "{gen}:" + "9" * 19,
    "a" * 65 + ":1",
    ",".join(["{gen}:1"] * 400),
]
NEGATIVE = ["{gen}:-1", "{gen}:-0", "{gen}:-999999999", "{gen}:--1"]
FUTURE = ["{gen}:7", "{gen}:8", "{gen}:999999999999999999"]
# Only a query parameter carries these as they are: a header value cannot hold control
# characters, and HTTP strips the spaces around it (so " <cursor>" is a valid header).
QUERY_ONLY = [
    " ",
    " {gen}:1",
    "{gen}:1 ",
    "{gen}:1\n",
    "{gen}\r\n:1",
    "{gen}:1\x00",
    "\x00:1",
    "{gen}:\t1",
    "{gen}:1\u2028",
]
ANSWERED_400 = [
    *(pytest.param(c, id=f"malformed-{i}") for i, c in enumerate(MALFORMED)),
    *(pytest.param(c, id=f"oversized-{i}") for i, c in enumerate(OVERSIZED)),
    *(pytest.param(c, id=f"negative-{i}") for i, c in enumerate(NEGATIVE)),
]


async def finished_stream(http: httpx.AsyncClient) -> tuple[str, list[SSE]]:
    """A finished stream of 5 events and `done`: its id and its events."""
    item = fresh("cursor")
    events = await read_events(http, "POST", f"/keys/{item}", json={"count": 5})
    assert [e.event for e in events] == ["message"] * 5 + ["done"]
    return item, events


async def resume_raw(http: httpx.AsyncClient, item: str, cursor: str, where: str) -> httpx.Response:
    """GET the resume route with `cursor` in the header (as UTF-8) or the query."""
    with anyio.fail_after(10):
        if where == "header":
            header = {"Last-Event-ID": cursor.encode()}
            return await http.get(f"/keys/{item}/stream", headers=header)
        return await http.get(f"/keys/{item}/stream", params={"last_event_id": cursor})


@pytest.mark.parametrize("where", ["header", "query"])
@pytest.mark.parametrize("template", ANSWERED_400)
async def test_bad_cursor_is_400_with_a_json_detail(
    server: UvicornServer, where: str, template: str
) -> None:
    async with server.client() as http:
        item, events = await finished_stream(http)
        cursor = template.replace("{gen}", generation_of(events[0]))
        response = await resume_raw(http, item, cursor, where)
    detail = assert_json_error(response, 400)
    assert "text/event-stream" not in response.text
    assert len(detail) < 400, "the detail must not echo an oversized cursor back whole"


@pytest.mark.parametrize("template", QUERY_ONLY)
async def test_cursor_with_control_characters_in_the_query_is_400(
    server: UvicornServer, template: str
) -> None:
    async with server.client() as http:
        item, events = await finished_stream(http)
        cursor = template.replace("{gen}", generation_of(events[0]))
        response = await resume_raw(http, item, cursor, "query")
    assert_json_error(response, 400)


async def test_non_ascii_cursor_header_is_400(server: UvicornServer) -> None:
    async with server.client() as http:
        item, events = await finished_stream(http)
        for cursor in [f"{generation_of(events[0])}:\u0661", "g\u00e9n:1", "\U0001f600:1"]:
            response = await resume_raw(http, item, cursor, "header")
            assert_json_error(response, 400)


@pytest.mark.parametrize("where", ["header", "query"])
async def test_cursor_of_a_foreign_generation_gets_reset_then_the_current_one(
    server: UvicornServer, where: str
) -> None:
    async with server.client() as http:
        item, events = await finished_stream(http)
        generation = generation_of(events[0])
        rerun = await read_events(http, "POST", f"/keys/{item}", json={"count": 4})
        current = generation_of(rerun[0])
        assert current != generation
        foreign = [
            f"{generation}:3",  # this key's previous run
            f"{generation}:6",  # its terminal event
            f"{secrets.token_urlsafe(16)}:0",
            f"{secrets.token_urlsafe(16)}:5",
            f"{secrets.token_urlsafe(16)}:999999999999999999",
            "A" * 64 + ":2",
            "-_-:1",
        ]
        for cursor in foreign:
            options: dict[str, Any] = (
                {"headers": {"Last-Event-ID": cursor}}
                if where == "header"
                else {"params": {"last_event_id": cursor}}
            )
            got = await read_events(http, "GET", f"/keys/{item}/stream", **options)
            assert got[0].event == "reset", cursor
            assert got[0].id == f"{current}:0"
            assert got[0].json() == {"generation": current}
            assert got[1:] == rerun, cursor


@pytest.mark.parametrize("where", ["header", "query"])
async def test_cursor_beyond_a_finished_stream_gets_reset_then_the_stream(
    server: UvicornServer, where: str
) -> None:
    """What a client holds after a failover lost the tail it saw: never a dead end."""
    async with server.client() as http:
        item, events = await finished_stream(http)
        for template in FUTURE:
            cursor = template.replace("{gen}", generation_of(events[0]))
            options: dict[str, Any] = (
                {"headers": {"Last-Event-ID": cursor}}
                if where == "header"
                else {"params": {"last_event_id": cursor}}
            )
            got = await read_events(http, "GET", f"/keys/{item}/stream", **options)
            assert got[0].event == "reset", cursor
            assert got[1:] == events, cursor


@pytest.mark.parametrize("where", ["header", "query"])
async def test_valid_cursors_of_the_current_generation(server: UvicornServer, where: str) -> None:
    """The documented answers around the bad ones: 0 is the start, the end is a 204."""
    async with server.client() as http:
        item, events = await finished_stream(http)
        generation = generation_of(events[0])
        for seq in range(6):
            options: dict[str, Any] = (
                {"headers": {"Last-Event-ID": f"{generation}:{seq}"}}
                if where == "header"
                else {"params": {"last_event_id": f"{generation}:{seq}"}}
            )
            got = await read_events(http, "GET", f"/keys/{item}/stream", **options)
            assert got == events[seq:]
        response = await resume_raw(http, item, f"{generation}:6", where)
        assert response.status_code == 204
        assert response.content == b""


async def test_unknown_key_with_a_valid_cursor_is_404(server: UvicornServer) -> None:
    async with server.client() as http:
        cursor = f"{secrets.token_urlsafe(16)}:1"
        for where in ("header", "query"):
            response = await resume_raw(http, fresh("missing"), cursor, where)
            assert "no stream" in assert_json_error(response, 404)


# ----------------------------------------------------------------------------------------
# Stream keys
# ----------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "a{b",
    "a}b",
    "{",
    "}",
    "{}",
    "}{",
    "a}{b",
    "{a}",
    "x}:state",
    "}:events",
    "a:b",
    "k:a",
    "::",
    "*",
    "a*",
    "?",
    "[ab]",
    "a b",
    " lead",
    "trail ",
    "a+b",
    "%",
    "%25",
    "%7D",
    "a%7Db",
    "a%7D%7Bb",
    "%%",
    "é",
    "e\u0301",
    "日本語",
    "🙂",
    "\u202eRTL",
    "zero\u200bwidth",
    "\ufeff",
    "\u2028",
    "\ufffd",
    "'\"`<script>",
    "x" * 510,  # "k:" + 510 characters: exactly the 512 a key may have
]
CONTROL_IDS = ["\x00", "a\x00b", "\x01", "\t", "\n", "\r", "\r\n", "\x1b[31m", "\x7f", "\x85"]
TOO_LONG_IDS = ["x" * 511, "y" * 600, "z" * 10_000, "é" * 600]


def path(item: str) -> str:
    return "/keys/" + quote(item, safe="")


def tokens(item: str, count: int) -> list[dict[str, Any]]:
    return [{"id": item, "i": i} for i in range(count)]


async def assert_stored_safely(http: httpx.AsyncClient, item: str) -> None:
    run = await read_events(http, "POST", path(item), json={"count": 3})
    assert [e.json() for e in run[:-1]] == tokens(item, 3)
    assert run[-1].event == "done"
    assert await read_events(http, "GET", path(item) + "/stream") == run
    status = (await http.get(path(item) + "/status")).json()
    assert status["key"] == f"k:{item}"
    assert status["status"] == "done"
    assert status["last_event_id"] == run[-1].id
    cancel = (await http.post(path(item) + "/cancel")).json()
    assert cancel["key"] == f"k:{item}"
    assert cancel["cancelled"] is False


@pytest.mark.parametrize("item", HOSTILE_IDS, ids=ascii)
async def test_hostile_key_is_stored_safely(server: UvicornServer, item: str) -> None:
    async with server.client() as http:
        await assert_stored_safely(http, item)


@pytest.mark.parametrize("item", CONTROL_IDS, ids=ascii)
async def test_key_with_control_characters_is_refused_or_stored_safely(
    server: UvicornServer, item: str
) -> None:
    async with server.client() as http:
        response = await http.post(path(item), json={"count": 3})
        if response.status_code == 422:
            assert_json_error(response, 422)
            return
        await assert_stored_safely(http, item)


@pytest.mark.parametrize("item", TOO_LONG_IDS, ids=lambda i: f"{len(i)}x{i[0]!a}")
async def test_too_long_key_is_422_json_on_every_route(server: UvicornServer, item: str) -> None:
    async with server.client() as http:
        for method, suffix in [("POST", ""), ("GET", "/stream"), ("POST", "/cancel")]:
            response = await http.request(method, path(item) + suffix, json={"count": 1})
            assert "512" in assert_json_error(response, 422), suffix
        response = await http.get(path(item) + "/status")
        assert_json_error(response, 422)


# Pairs that one careless escaping or normalisation would merge into one key.
COLLIDING_PAIRS = [
    ("a}{b", "a%7D%7Bb"),
    ("a}b", "a%7Db"),
    ("a{b", "a%7Bb"),
    ("%", "%25"),
    ("%7B", "{"),
    ("a%25b", "a%b"),
    ("a b", "a+b"),
    ("a b", "a%20b"),
    ("é", "e\u0301"),
    ("A", "a"),
    ("a:b", "a_b"),
    ("a*", "a?"),
    ("a\x00", "a"),
    ("x}:state", "x"),
]


async def test_ids_that_naive_escaping_would_merge_get_separate_streams(
    deployment: Deployment,
) -> None:
    tag = fresh("c") + "-"
    items = sorted({f"{tag}{x}" for pair in COLLIDING_PAIRS for x in pair})
    async with deployment.server.client() as http:
        runs = {}
        for item in items:
            runs[item] = await read_events(http, "POST", path(item), json={"count": 3})
        for item in items:
            resumed = await read_events(http, "GET", path(item) + "/stream")
            assert resumed == runs[item], item
            assert [e.json() for e in resumed[:-1]] == tokens(item, 3)
    generations = {generation_of(run[0]) for run in runs.values()}
    assert len(generations) == len(items)
    if deployment.redis is not None:
        await assert_one_hash_tag_per_key(deployment.redis, tag, len(items))


async def assert_one_hash_tag_per_key(redis: RedisServer, tag: str, count: int) -> None:
    """In Redis: one state key per id, each name with exactly one `{...}` hash tag."""
    async with redis.client() as client:
        names = [name async for name in client.scan_iter(match="streamhub:*", count=1000)]
    state = [n for n in names if n.endswith(":state") and f"k:{tag}" in n]
    assert len(state) == count
    shape = re.compile(r"streamhub:\{[^{}]*\}:(state|events)")
    assert all(shape.fullmatch(n) for n in names if f"k:{tag}" in n), names


# ----------------------------------------------------------------------------------------
# Producers that misbehave
# ----------------------------------------------------------------------------------------

SAFE_MESSAGES = {
    "unsupported": "The stream produced a value that cannot be sent.",
    "failed": "The stream failed.",
    "limit": f"An event was larger than {MAX_EVENT_BYTES} bytes.",
}
# mode -> (the error's reason, text the server log must hold on the stream's line or
# its traceback). `surrogate` and the log of `too_large*` are pinned by the tests below.
EXPECTED: dict[str, tuple[str | None, str | None]] = {
    "object": ("unsupported", "InternalWidget"),
    "bytes": ("unsupported", "bytes"),
    "set": ("unsupported", "set"),
    "nan": ("unsupported", "float"),
    "dict_with_object": ("unsupported", "InternalWidget"),
    "event_with_object": ("unsupported", "InternalWidget"),
    "surrogate": (None, "surrogate"),
    "too_large": ("limit", None),
    "too_large_dict": ("limit", None),
    "raise": ("failed", "LeakyError"),
    "raise_first": ("failed", "LeakyError"),
    "reserved_event": ("failed", "reserved"),
}
INTERNALS = [
    SECRET,
    "hunter2",
    "InternalWidget",
    "LeakyError",
    "Traceback",
    "File ",
    "Error",
    "hostile_app",
    "serializable",
    "\\ud800",
]


def log_block(logs: str, key: str) -> str:
    """The log line that names `key`, with the traceback lines that follow it."""
    lines = logs.splitlines()
    for index, line in enumerate(lines):
        if repr(key) in line:
            block = [line]
            for follow in lines[index + 1 :]:
                if follow.startswith("INFO:") or repr("bad:") in follow:
                    break
                block.append(follow)
            return "\n".join(block)
    return ""


def test_every_mode_of_the_app_is_expected() -> None:
    assert set(EXPECTED) == set(BAD_MODES)


async def run_bad(http: httpx.AsyncClient, rid: str, mode: str) -> list[SSE]:
    events = await read_events(http, "POST", f"/bad/{rid}", json={"mode": mode})
    expected_ok = [] if mode == "raise_first" else ["ok"]
    assert [e.json() for e in events[:-1]] == expected_ok
    return events


@pytest.mark.parametrize("mode", sorted(BAD_MODES))
async def test_misbehaving_producer_ends_with_a_safe_error(
    server: UvicornServer, mode: str
) -> None:
    rid = fresh("bad")
    reason, logged = EXPECTED[mode]
    async with server.client() as http:
        events = await run_bad(http, rid, mode)
        error = events[-1]
        assert error.event == "error"
        body = error.json()
        assert set(body) == {"message", "reason"}
        if reason is not None:
            assert body["reason"] == reason
        assert body["message"] == SAFE_MESSAGES[body["reason"]]
        for secret in INTERNALS:
            assert secret not in error.data, secret
        status = (await http.get(f"/bad/{rid}/status")).json()
        assert status["status"] == "error"
        assert status["last_event_id"] == error.id
        assert await read_events(http, "GET", f"/bad/{rid}/stream") == events
    if logged is not None:

        async def explained() -> bool:
            return logged in log_block(server.logs(), f"bad:{rid}")

        await eventually(explained, timeout_s=5)


async def test_oversized_event_is_logged_with_its_stream_and_limit(server: UvicornServer) -> None:
    """Bug: an event over `max_event_bytes` ends the stream with a safe error, but the
    server log says nothing, so an operator cannot learn why the stream failed."""
    rid = fresh("bad")
    async with server.client() as http:
        events = await run_bad(http, rid, "too_large")
    assert events[-1].json()["reason"] == "limit"

    async def explained() -> bool:
        return str(MAX_EVENT_BYTES) in log_block(server.logs(), f"bad:{rid}")

    await eventually(explained, timeout_s=3)


async def test_lone_surrogate_chunk_is_unsupported_not_a_producer_crash(
    server: UvicornServer,
) -> None:
    """Bug: a str holding a lone surrogate cannot be sent (it is not UTF-8), yet the
    stream ends with reason `failed` and the log says "the producer raised", as if
    the generator itself had failed, instead of `unsupported` naming the value's type."""
    rid = fresh("bad")
    async with server.client() as http:
        events = await run_bad(http, rid, "surrogate")
    assert events[-1].json() == {"message": SAFE_MESSAGES["unsupported"], "reason": "unsupported"}


async def test_publish_of_a_lone_surrogate_raises_unsupported_chunk_error(
    deployment: Deployment,
) -> None:
    """Bug: `Producer.publish` documents `UnsupportedChunkError` for a chunk that cannot
    be encoded, but a lone surrogate raises `UnicodeEncodeError` out of it."""
    redis = deployment.redis
    hub = StreamHub.from_url(redis.url) if redis is not None else StreamHub()
    raised: list[type[BaseException] | None] = []
    async with hub:
        producer, _ = await hub.register(fresh("surrogate"))
        for chunk in ["\udc80", {"text": "\ud800"}]:
            try:
                await producer.publish(chunk)
            except Exception as exc:  # the assertion below names what was raised
                raised.append(type(exc))
            else:
                raised.append(None)
        assert await producer.close() == "done"
    assert raised == [UnsupportedChunkError, UnsupportedChunkError]


async def test_error_event_of_a_misbehaving_producer_is_one_json_line(
    server: UvicornServer,
) -> None:
    """On the wire: the error event is exactly `id`, `event: error`, one `data:` line."""
    rid = fresh("bad")
    async with server.client() as http:
        await run_bad(http, rid, "raise")
        with anyio.fail_after(10):
            raw = (await http.get(f"/bad/{rid}/stream")).text
    blocks = raw.split("\n\n")
    error = next(b for b in blocks if "event: error" in b)
    lines = error.split("\n")
    assert len(lines) == 3 and lines[1] == "event: error"
    assert json.loads(lines[2].removeprefix("data: "))["reason"] == "failed"


async def test_bad_input_never_answers_500(server: UvicornServer) -> None:
    """A sweep over everything above, in one place: no 5xx and no traceback in a body."""
    tag = fresh("sweep") + "-"
    async with server.client() as http:
        item, events = await finished_stream(http)
        generation = generation_of(events[0])
        cursors = [t.replace("{gen}", generation) for t in MALFORMED + OVERSIZED + NEGATIVE]
        for cursor in cursors:
            for where in ("header", "query"):
                response = await resume_raw(http, item, cursor, where)
                assert response.status_code < 500 and "Traceback" not in response.text
        for hostile in HOSTILE_IDS + CONTROL_IDS + TOO_LONG_IDS + ["a/b", "/", "%2F"]:
            item_id = tag + hostile
            for method, suffix in [("GET", "/stream"), ("GET", "/status"), ("POST", "/cancel")]:
                response = await http.request(method, path(item_id) + suffix)
                assert response.status_code in (307, 404, 405, 422), (item_id, suffix)
            stream = await read_stream(http, "POST", path(item_id), json={"count": 1})
            assert stream.status_code in (200, 307, 404, 405, 422), item_id


async def test_max_event_bytes_counts_the_utf8_bytes_of_the_json(server: UvicornServer) -> None:
    """At the limit, an event passes; one byte over (counted in UTF-8, not characters)
    ends the stream with the `limit` error, and nothing of the big event is stored."""
    at_limit = ["x" * 998, "é" * 499, "🙂" * 249, {"k": "x" * 990}]
    assert [
        len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()) for v in at_limit
    ] == [1000, 1000, 998, 998]
    async with server.client() as http:
        events = await read_events(
            http, "POST", f"/echo/{fresh('limit')}", json={"chunks": at_limit}
        )
        assert [e.json() for e in events[:-1]] == at_limit
        assert events[-1].event == "done"
        rid = fresh("limit")
        events = await read_events(
            http, "POST", f"/echo/{rid}", json={"chunks": ["ok", "é" * 500, "never"]}
        )
        assert [e.json() for e in events[:-1]] == ["ok"]
        assert events[-1].event == "error"
        assert events[-1].json() == {"message": SAFE_MESSAGES["limit"], "reason": "limit"}
        assert (await http.get(f"/echo/{rid}/status")).json()["last_seq"] == 2


# ----------------------------------------------------------------------------------------
# Routes on an APIRouter
# ----------------------------------------------------------------------------------------


async def test_stream_routes_on_an_included_router_are_mounted_behind_its_dependencies(
    server: UvicornServer,
) -> None:
    """Bug: `mount_stream_routes` looks for `@resumable_stream` endpoints only among the
    `APIRoute`s of `app.router.routes`. FastAPI (0.165 here) keeps an included
    `APIRouter` there as one `_IncludedRouter` entry, so a stream declared on a router
    (the usual layout of a FastAPI app) gets no `/stream`, `/cancel` or `/status`
    route: 404, whatever the credentials. Once mounted, they must keep the router's
    dependencies (401 without the token)."""
    rid = fresh("private")
    base = f"/api/private/{rid}"
    token = {"X-Token": "letmein"}
    async with server.client() as http:
        assert (await http.post(base, json={"count": 2})).status_code == 401
        run = await read_events(http, "POST", base, json={"count": 2}, headers=token)
        assert [e.json() for e in run[:-1]] == ["secret", "secret"]
        for method, suffix in [("GET", "/stream"), ("GET", "/status"), ("POST", "/cancel")]:
            anonymous = await http.request(method, base + suffix)
            assert anonymous.status_code == 401, (suffix, anonymous.status_code)
        assert await read_events(http, "GET", base + "/stream", headers=token) == run
        status = await http.get(base + "/status", headers=token)
        assert status.status_code == 200 and status.json()["key"] == f"private:{rid}"
        cancel = await http.post(base + "/cancel", headers=token)
        assert cancel.status_code == 200 and cancel.json()["cancelled"] is False
