"""`@ai_sdk_stream` over HTTP: real uvicorn processes on each backend, exact parts.

What `useChat` relies on: the headers and the parts of the answer, a resume that replays the
running answer from its `start` with the same message id (on any instance), `204` when
nothing runs, a cursor that resumes after itself, Stop ending the answer with `abort`, and
the mounted routes guarded like the route. `tests/test_ai_sdk_node.py` feeds such answers to
the SDK's own parser; `tests/test_ai_sdk_browser.py` drives `useChat` itself.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from tests.apps.ai_sdk_app import USAGE, token
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, SSEStream, read_stream
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.ai_sdk_app:create_app"
_ids = itertools.count()

MakeServer = Callable[..., UvicornServer]


def chat_id() -> str:
    return f"chat{next(_ids)}"


def body(chat: str, text: str = "Hi", **script: Any) -> dict[str, Any]:
    """`useChat`'s body for a first message, plus the app's script fields."""
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}
    return {"id": chat, "messages": [message], "trigger": "submit-message", **script}


def start(make_uvicorn_server: MakeServer, redis_url: str | None) -> UvicornServer:
    env = {"TEST_REDIS_URL": redis_url} if redis_url is not None else {}
    return make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")


def storage_url(request: pytest.FixtureRequest, kind: str) -> str | None:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    if kind == "cluster":
        return str(request.getfixturevalue("shared_redis_cluster").url)
    return None


@pytest.fixture(params=["memory", "redis", "cluster"])
def server(request: pytest.FixtureRequest, make_uvicorn_server: MakeServer) -> UvicornServer:
    return start(make_uvicorn_server, storage_url(request, request.param))


@pytest.fixture(params=["redis", "cluster"])
def two_servers(
    request: pytest.FixtureRequest, make_uvicorn_server: MakeServer
) -> tuple[UvicornServer, UvicornServer]:
    url = storage_url(request, request.param)
    return start(make_uvicorn_server, url), start(make_uvicorn_server, url)


def parts(events: list[SSE]) -> list[Any]:
    """The parts of a UI message stream: each `data:` decoded, `[DONE]` kept as is."""
    return ["[DONE]" if e.data == "[DONE]" else json.loads(e.data) for e in events]


def answer_parts(message_id: str, count: int) -> list[Any]:
    """The parts of a whole answer of `count` tokens."""
    text = [{"type": "text-delta", "id": "text-1", "delta": token(i)} for i in range(count)]
    return [
        {"type": "start", "messageId": message_id},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        *text,
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop", "messageMetadata": {"usage": USAGE}},
        "[DONE]",
    ]


async def generation(http: httpx.AsyncClient, chat: str, prefix: str = "/api/chat") -> str:
    status = (await http.get(f"{prefix}/{chat}/status")).json()
    return str(status["generation"])


async def runs(http: httpx.AsyncClient, chat: str) -> dict[str, Any]:
    return dict((await http.get(f"/debug/runs/{chat}")).json())


async def test_the_answer_is_a_ui_message_stream(server: UvicornServer) -> None:
    chat = chat_id()
    async with server.client() as http:
        stream = await read_stream(http, "POST", "/api/chat", json=body(chat, count=3))
        gen = await generation(http, chat)
        record = await runs(http, chat)
    assert stream.status_code == 200
    assert record["message_id"] == gen, "current_message_id() is the generation's id"
    headers = stream.headers
    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert headers["content-type"].split(";")[0] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert parts(stream.events) == answer_parts(gen, 3)
    assert stream.retry is None, "the SDK's parser has no use for retry:"
    # The last part of each stored event carries that event's id; the parts an event opens
    # or closes a block with do not.
    assert [e.id if e.has_id else None for e in stream.events] == [
        None,
        f"{gen}:1",
        None,
        f"{gen}:2",
        f"{gen}:3",
        f"{gen}:4",
        None,
        None,
        f"{gen}:5",
        None,
    ]


async def test_keepalives_are_comments(server: UvicornServer) -> None:
    chat = chat_id()
    async with server.client() as http:
        stream = await read_stream(
            http, "POST", "/api/chat", json=body(chat, count=2, delay_ms=700)
        )
    assert "ping" in stream.comments, "the app sends a keep-alive every 0.2 s"
    assert parts(stream.events)[-1] == "[DONE]"
    assert all(e.data == "[DONE]" or isinstance(json.loads(e.data), dict) for e in stream.events)


async def test_resume_replays_the_running_answer_from_its_start_on_another_instance(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    chat = chat_id()
    script = body(chat, count=200, delay_ms=2)
    async with a.client() as http_a, b.client() as http_b:
        first = await read_stream(http_a, "POST", "/api/chat", json=script, limit=20)
        replay = await read_stream(http_b, "GET", f"/api/chat/{chat}/stream")
        gen = await generation(http_b, chat)
        assert (await runs(http_b, chat))["starts"] == 0, "B replays, it does not generate"
    assert parts(first.events) == answer_parts(gen, 200)[:20]
    assert replay.status_code == 200
    assert parts(replay.events) == answer_parts(gen, 200)


async def test_resume_answers_204_when_no_answer_runs(server: UvicornServer) -> None:
    chat = chat_id()
    async with server.client() as http:
        never = await http.get(f"/api/chat/{chat}/stream")
        await read_stream(http, "POST", "/api/chat", json=body(chat, count=2))
        finished = await http.get(f"/api/chat/{chat}/stream")
    assert (never.status_code, never.content) == (204, b""), "useChat opens a new chat with it"
    assert (finished.status_code, finished.content) == (204, b"")


@pytest.mark.parametrize("limit", [3, 9])
async def test_a_cursor_resumes_after_itself(server: UvicornServer, limit: int) -> None:
    chat = chat_id()
    async with server.client() as http:
        first = await read_stream(
            http, "POST", "/api/chat", json=body(chat, count=50, delay_ms=5), limit=limit
        )
        cursor = first.events[-1].id
        by_query = await read_stream(
            http, "GET", f"/api/chat/{chat}/stream", params={"last_event_id": cursor}
        )
        by_header = await read_stream(
            http, "GET", f"/api/chat/{chat}/stream", headers={"Last-Event-ID": cursor}
        )
        gen = await generation(http, chat)
        last = f"{gen}:{1 + 50 + 1}"  # message_start, the tokens, done
        end = await http.get(f"/api/chat/{chat}/stream", headers={"Last-Event-ID": last})
        bad = await http.get(f"/api/chat/{chat}/stream", headers={"Last-Event-ID": "nope"})
    # What came after the last part with an id (here, with limit 3, the text block's start)
    # comes again: the cursor covers the events whose parts all arrived.
    seen = max(i for i, e in enumerate(first.events) if e.has_id) + 1
    assert seen == (2 if limit == 3 else limit)
    assert parts(first.events[:seen] + by_query.events) == answer_parts(gen, 50)
    assert parts(by_header.events) == parts(by_query.events)
    assert end.status_code == 204, "the cursor is the end of the finished answer"
    assert bad.status_code == 400


async def test_a_cursor_inside_a_compacted_run_gets_the_rest_of_it(server: UvicornServer) -> None:
    """After compaction the tokens are one merged text event; a client whose cursor points
    into it (it saw some of those tokens live) gets the rest of the run, not all of it."""
    chat = chat_id()
    async with server.client() as http:
        first = await read_stream(
            http, "POST", "/api/chat", json=body(chat, count=50, delay_ms=1), limit=9
        )
        await read_stream(http, "GET", f"/api/chat/{chat}/stream")
        assert (await http.post(f"/debug/compact/{chat}")).json() is True
        gen = await generation(http, chat)
        rest = await read_stream(
            http, "GET", f"/api/chat/{chat}/stream", params={"last_event_id": first.events[-1].id}
        )
    seen = max(i for i, e in enumerate(first.events) if e.has_id) + 1
    got = parts(first.events[:seen] + rest.events)
    text = "".join(p["delta"] for p in got if isinstance(p, dict) and p["type"] == "text-delta")
    assert text == "".join(token(i) for i in range(50)), "no token twice, none missing"
    whole = answer_parts(gen, 50)
    assert [p for p in got if not (isinstance(p, dict) and p["type"] == "text-delta")] == [
        p for p in whole if not (isinstance(p, dict) and p["type"] == "text-delta")
    ]


async def test_stop_ends_the_answer_with_abort_and_stops_the_generator(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    chat = chat_id()
    streams: dict[str, SSEStream] = {}
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:

        async def follow() -> None:
            script = body(chat, count=100_000, delay_ms=5)
            streams["live"] = await read_stream(http_a, "POST", "/api/chat", json=script)

        group.start_soon(follow)

        async def yielding() -> bool:
            return (await runs(http_a, chat))["yielded"] >= 5

        await eventually(yielding)
        cancel = await http_b.post(f"/api/chat/{chat}/cancel")
    async with a.client() as http_a, b.client() as http_b:
        after = await http_b.get(f"/api/chat/{chat}/stream")
        status = (await http_b.get(f"/api/chat/{chat}/status")).json()
        record = await runs(http_a, chat)
    assert cancel.status_code == 200
    assert (cancel.json()["cancelled"], cancel.json()["status"]) == (True, "cancelled")
    live = parts(streams["live"].events)
    assert live[-2:] == [{"type": "abort"}, "[DONE]"]
    deltas = [p["delta"] for p in live[:-2] if p["type"] == "text-delta"]
    assert len(deltas) >= 5
    assert live[:-2] == answer_parts(live[0]["messageId"], len(deltas))[:-4]
    assert after.status_code == 204, "a reconnect after Stop restarts nothing"
    assert status["status"] == "cancelled"
    assert (record["starts"], record["finally"]) == (1, 1)


async def test_an_error_reaches_the_client_as_an_error_part(server: UvicornServer) -> None:
    chat = chat_id()
    async with server.client() as http:
        stream = await read_stream(http, "POST", "/api/chat", json=body(chat, count=1, fail=True))
    assert parts(stream.events)[-2:] == [
        {"type": "error", "errorText": "The model is unavailable."},
        "[DONE]",
    ]


async def test_a_second_message_while_the_answer_runs_is_refused(server: UvicornServer) -> None:
    chat = chat_id()
    async with server.client() as http, anyio.create_task_group() as group:

        async def first() -> None:
            await read_stream(http, "POST", "/api/chat", json=body(chat, count=30, delay_ms=20))

        group.start_soon(first)

        async def running() -> bool:
            return (await runs(http, chat))["yielded"] >= 1

        await eventually(running)
        second = await http.post("/api/chat", json=body(chat, "Another"))
    assert second.status_code == 409
    assert second.json() == {"detail": f"stream 'chat:{chat}' is already running"}


async def test_an_answer_that_continues_an_assistant_message_keeps_its_id(
    server: UvicornServer,
) -> None:
    chat = chat_id()
    continued = body(chat, count=1)
    continued["messages"].append({"id": "answer-7", "role": "assistant", "parts": []})
    async with server.client() as http:
        stream = await read_stream(http, "POST", "/api/chat", json=continued)
        record = await runs(http, chat)
    assert parts(stream.events)[0] == {"type": "start", "messageId": "answer-7"}
    assert record["message_id"] == "answer-7"


async def test_the_mounted_routes_are_guarded_and_documented(server: UvicornServer) -> None:
    chat = chat_id()
    alice = {"Authorization": "Bearer alice"}
    async with server.client() as http:
        refused = [
            (await http.request(method, f"/guarded/chat/{chat}/{name}")).status_code
            for method, name in [("GET", "stream"), ("POST", "cancel"), ("GET", "status")]
        ]
        allowed = await http.get(f"/guarded/chat/{chat}/stream", headers=alice)
        schema = (await http.get("/openapi.json")).json()
    assert refused == [401, 401, 401]
    assert allowed.status_code == 204
    paths = schema["paths"]
    for prefix in ("/api/chat", "/guarded/chat"):
        assert "text/event-stream" in paths[prefix]["post"]["responses"]["200"]["content"]
        resume = paths[f"{prefix}/{{id}}/stream"]["get"]
        assert "text/event-stream" in resume["responses"]["200"]["content"]
        assert {"id", "last_event_id", "Last-Event-ID"} <= {p["name"] for p in resume["parameters"]}
        assert {f"{prefix}/{{id}}/cancel", f"{prefix}/{{id}}/status"} <= paths.keys()
