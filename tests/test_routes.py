"""The mounted routes as a FastAPI app sees them: in its schema without starting it,
guarded like the route they serve, answering errors the app's own handlers can shape."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

import fastapi_streamhub
from fastapi_streamhub import (
    StreamHTTPError,
    StreamHub,
    mount_stream_routes,
    resumable_stream,
)
from tests.support.redis_server import RedisServer
from tests.support.routes import served_paths
from tests.support.sse import SSEParser

SIBLINGS = [("get", "/stream"), ("post", "/cancel"), ("get", "/status")]


def add_chat_routes(app: FastAPI) -> None:
    """A stream on the app itself and one on a router included with a prefix."""

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield f"chat {chat_id}"

    router = APIRouter(tags=["rooms"])

    @router.post("/rooms/{room_id}")
    @resumable_stream("room:{room_id}")
    async def room(room_id: str) -> AsyncIterator[str]:
        yield f"room {room_id}"

    app.include_router(router, prefix="/v1")


def assert_documented(schema: dict[str, Any], base: str) -> None:
    """The start route's 200 is an event stream and nothing else; its three routes exist."""
    paths = schema["paths"]
    assert list(paths[base]["post"]["responses"]["200"]["content"]) == ["text/event-stream"]
    for method, suffix in SIBLINGS:
        assert method in paths[base + suffix], (base, suffix, sorted(paths))


# ----------------------------------------------------------------------------------------
# The schema without the lifespan
# ----------------------------------------------------------------------------------------


def test_init_app_puts_routes_declared_after_it_in_the_schema_without_startup() -> None:
    """Bug: the mounted routes existed only once the lifespan ran, so `app.openapi()`
    (schema export in CI, client generation) missed them."""
    hub = StreamHub()
    app = FastAPI()
    hub.init_app(app)
    add_chat_routes(app)
    schema = app.openapi()
    assert_documented(schema, "/chat/{chat_id}")
    assert_documented(schema, "/v1/rooms/{room_id}")
    assert schema["paths"]["/v1/rooms/{room_id}/status"]["get"]["tags"] == ["rooms"]
    assert not hub.started


def test_mount_stream_routes_gives_a_lifespan_app_its_schema_offline() -> None:
    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)
    add_chat_routes(app)
    mount_stream_routes(app)
    schema = app.openapi()
    assert_documented(schema, "/chat/{chat_id}")
    assert_documented(schema, "/v1/rooms/{room_id}")


def test_routes_are_mounted_once_however_often_they_are_asked_for() -> None:
    """`init_app`, `mount_stream_routes`, the schema and the startup each mount what is
    missing; the routes still serve once startup has run."""
    hub = StreamHub()
    app = FastAPI()
    hub.init_app(app)
    add_chat_routes(app)
    app.openapi()
    mount_stream_routes(app)
    mount_stream_routes(app)
    app.openapi()
    with TestClient(app) as client:
        events = SSEParser().feed(client.post("/v1/rooms/3").text)
        assert [e.json() for e in events] == ["room 3", {}]
        assert client.get("/v1/rooms/3/status").json()["status"] == "done"
        schema = client.get("/openapi.json").json()
    assert_documented(schema, "/v1/rooms/{room_id}")
    paths = served_paths(app)
    for base in ("/chat/{chat_id}", "/v1/rooms/{room_id}"):
        for _, suffix in SIBLINGS:
            assert paths.count(base + suffix) == 1, (base, suffix)


HUB_MODULES = ["_hub.py", "_shared_tasks.py", "_launcher.py", "_reads.py", "_commands.py"]


@pytest.mark.parametrize("module", HUB_MODULES)
def test_the_hub_does_not_import_the_fastapi_layer(module: str) -> None:
    """The integration layer wires the hub into the app, not the other way round."""
    source = Path(fastapi_streamhub.__file__).with_name(module).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    layer = {"fastapi", "starlette", "sse_starlette"}
    ours = {"._routes", "._mount", "._decorator", "._dependency", "._sse", "._guards"}
    assert not {name for name in imported if name.split(".")[0] in layer}
    assert not imported & ours


FASTAPI_LAYER = [
    "_decorator.py",
    "_dependency.py",
    "_guards.py",
    "_http_errors.py",
    "_mount.py",
    "_routes.py",
    "_spec.py",
    "_sse.py",
]
#: Attributes of FastAPI's private `_IncludedRouter` and `_EffectiveRouteContext`.
PRIVATE_CLASS_ATTRIBUTES = {"original_router", "include_context", "effective_route_contexts"}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names(source: str) -> list[str]:
    """Private names of other packages that `source` imports, reads, or overrides."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
            found += [name for name in names if is_private(name)]
        elif isinstance(node, ast.Attribute):
            mine = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if (is_private(node.attr) and not mine) or node.attr in PRIVATE_CLASS_ATTRIBUTES:
                found.append(node.attr)
        elif isinstance(node, ast.ClassDef) and node.bases:
            defined = [
                n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            found += [f.name for f in defined if is_private(f.name)]
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_CLASS_ATTRIBUTES:
            found.append(node.value)
    return found


@pytest.mark.parametrize("module", FASTAPI_LAYER)
def test_the_fastapi_layer_uses_no_private_name_of_its_dependencies(module: str) -> None:
    """Bug: the routes walked FastAPI's private `original_router`, and the response
    overrode sse-starlette's private `_send_with_timeout`; either can go in any release."""
    source = Path(fastapi_streamhub.__file__).with_name(module).read_text()
    assert private_names(source) == []


# ----------------------------------------------------------------------------------------
# OpenAPI of the start route
# ----------------------------------------------------------------------------------------


def test_the_start_routes_own_200_is_merged_with_the_event_stream() -> None:
    """Bug: `responses={200: ...}` on the decorated route replaced the event stream's
    entry, so the schema no longer said the route streams."""
    hub = StreamHub()
    app = FastAPI()
    hub.init_app(app)
    described = {
        200: {
            "description": "The answer, token by token",
            "content": {"text/event-stream": {"example": 'data: "Hi"\n\n'}},
        },
        429: {"description": "Too many chats"},
    }

    @app.post("/chat/{chat_id}", responses=described)
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    router = APIRouter()

    @router.post("/rooms/{room_id}", responses={200: {"description": "A room's stream"}})
    @resumable_stream("room:{room_id}")
    async def room(room_id: str) -> AsyncIterator[str]:
        yield room_id

    app.include_router(router, prefix="/v1")
    paths = app.openapi()["paths"]
    responses = paths["/chat/{chat_id}"]["post"]["responses"]
    assert responses["200"] == {
        "description": "The answer, token by token",
        "content": {"text/event-stream": {"example": 'data: "Hi"\n\n'}},
    }
    assert responses["429"] == {"description": "Too many chats"}
    assert paths["/v1/rooms/{room_id}"]["post"]["responses"]["200"] == {
        "description": "A room's stream",
        "content": {"text/event-stream": {}},
    }


# ----------------------------------------------------------------------------------------
# Guards
# ----------------------------------------------------------------------------------------


class Message(BaseModel):
    text: str


def author(message: Message, x_user: Annotated[str | None, Header()] = None) -> str:
    """A dependency that reads the body (and a header)."""
    if x_user is None:
        raise HTTPException(401, "who are you?")
    return f"{x_user}: {message.text}"


def signed_in(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(401, "sign in first")
    return x_user


def test_a_dependency_that_reads_the_body_is_not_rerun_by_the_mounted_routes() -> None:
    """Bug: the status route re-ran a dependency that parses the body, and a GET has
    none: 422 for every status request. Guards without a body still apply."""
    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(
        chat_id: str,
        line: Annotated[str, Depends(author)],
        user: Annotated[str, Depends(signed_in)],
    ) -> AsyncIterator[str]:
        yield line

    user = {"x-user": "ann"}
    with TestClient(app) as client:
        started = client.post("/chat/1", json={"text": "hi"}, headers=user)
        assert [e.json() for e in SSEParser().feed(started.text)] == ["ann: hi", {}]
        status = client.get("/chat/1/status", headers=user)
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "done"
        assert client.get("/chat/1/status").json() == {"detail": "sign in first"}
        assert client.post("/chat/1/cancel", headers=user).json()["cancelled"] is False
        assert client.get("/chat/1/stream", headers=user).status_code == 200
        schema = client.get("/openapi.json").json()
    assert "requestBody" not in schema["paths"]["/chat/{chat_id}/cancel"]["post"]


# ----------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------


def reshaping_app(hub: StreamHub) -> tuple[FastAPI, list[StreamHTTPError]]:
    app = FastAPI(lifespan=hub.lifespan)
    seen: list[StreamHTTPError] = []

    @app.exception_handler(StreamHTTPError)
    async def reshape(request: Request, exc: StreamHTTPError) -> JSONResponse:
        seen.append(exc)
        body = {"error": {"status": exc.status_code, "message": exc.detail}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    def only_reads(request: Request, key: str, action: str) -> bool:
        return action in ("start", "resume", "status")

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}", on_conflict="reject", authorize=only_reads)
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    return app, seen


def test_an_apps_exception_handler_reshapes_every_error_answer() -> None:
    """Bug: errors were returned as ready-made responses, so an app's exception
    handlers never saw them."""
    app, seen = reshaping_app(StreamHub())
    with TestClient(app) as client:
        events = SSEParser().feed(client.post("/chat/1").text)
        answers = [
            client.get("/chat/1/stream", headers={"Last-Event-ID": "garbage"}),
            client.post("/chat/1/cancel"),
            client.get("/chat/2/status"),
            client.get("/chat/" + "x" * 600 + "/status"),
        ]
    assert events[-1].event == "done"
    assert [(r.status_code, r.json()["error"]["status"]) for r in answers] == [
        (400, 400),
        (403, 403),
        (404, 404),
        (422, 422),
    ]
    assert answers[1].json()["error"]["message"] == "not allowed to cancel this stream"
    assert answers[2].json()["error"]["message"] == "no stream under key 'chat:2'"
    assert [type(e).__name__ for e in seen] == [
        "BadCursorHTTPError",
        "ForbiddenHTTPError",
        "StreamNotFoundHTTPError",
        "InvalidKeyHTTPError",
    ]
    assert all(isinstance(e, HTTPException) for e in seen)


def test_a_conflict_is_an_http_exception_too() -> None:
    hub = StreamHub()
    app, seen = reshaping_app(hub)
    with TestClient(app) as client:
        producer, _ = client.portal.call(hub.register, "chat:1")
        conflict = client.post("/chat/1")
        client.portal.call(producer.close)
    assert conflict.status_code == 409
    assert conflict.json() == {
        "error": {"status": 409, "message": "stream 'chat:1' is already running"}
    }
    assert [type(e).__name__ for e in seen] == ["StreamConflictHTTPError"]


def test_storage_unavailable_is_503_with_retry_after(redis_server: RedisServer) -> None:
    hub = StreamHub.from_url(redis_server.url, socket_timeout_s=0.5, write_deadline_s=0.5)
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    with TestClient(app) as client:
        redis_server.stop()
        answers = [client.get("/chat/1/status"), client.post("/chat/1")]
        redis_server.restart()
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json() == {"detail": "the stream storage is unavailable; retry shortly"}


def test_every_exported_http_error_is_an_http_exception_with_a_docstring() -> None:
    classes = [
        getattr(fastapi_streamhub, name)
        for name in fastapi_streamhub.__all__
        if name.endswith("HTTPError")
    ]
    assert len(classes) == 10
    for cls in classes:
        assert issubclass(cls, StreamHTTPError) and issubclass(cls, HTTPException)
        assert cls.__doc__
