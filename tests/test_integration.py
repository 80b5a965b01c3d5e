"""The FastAPI surface: starting the hub, the dependency, decorator misuse, public names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.testclient import TestClient

import fastapi_streamhub
from fastapi_streamhub import Event, StreamHub, current_producer, get_hub, resumable_stream
from tests.support.routes import served_paths
from tests.support.sse import SSEParser


def app_with_init_app() -> tuple[FastAPI, StreamHub, list[str]]:
    calls: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        calls.append("startup")
        yield {"database": "connected"}
        calls.append("shutdown")

    hub = StreamHub()
    app = FastAPI(lifespan=own_lifespan)
    hub.init_app(app)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(
        chat_id: str, hub: Annotated[StreamHub, Depends(get_hub)]
    ) -> AsyncIterator[object]:
        yield f"hello {chat_id}"
        yield Event("usage", {"tokens": 2, "hub_started": hub.started})
        await current_producer().set_metadata({"model": "sim"})

    return app, hub, calls


def test_init_app_keeps_the_apps_own_lifespan_and_mounts_routes() -> None:
    app, hub, calls = app_with_init_app()
    with TestClient(app) as client:
        assert calls == ["startup"]
        assert hub.started
        response = client.post("/chat/7")
        events = SSEParser().feed(response.text)
        assert [(e.event, e.json()) for e in events] == [
            ("message", "hello 7"),
            ("usage", {"tokens": 2, "hub_started": True}),
            ("done", {"model": "sim"}),
        ]
        status = client.get("/chat/7/status").json()
        assert (status["key"], status["status"], status["last_seq"]) == ("chat:7", "done", 3)
        assert (
            client.get("/chat/7/stream", headers={"Last-Event-ID": events[-1].id}).status_code
            == 204
        )
    assert calls == ["startup", "shutdown"]
    assert not hub.started


def test_using_an_unstarted_hub_says_how_to_start_it() -> None:
    app = FastAPI()
    app.state.streamhub = StreamHub()

    @app.get("/hub")
    async def endpoint(hub: Annotated[StreamHub, Depends(get_hub)]) -> str:
        return "unreachable"

    with (
        TestClient(app, raise_server_exceptions=True) as client,
        pytest.raises(fastapi_streamhub.HubNotStartedError, match="lifespan"),
    ):
        client.get("/hub")


def test_decorator_refuses_misuse_at_import_time() -> None:
    with pytest.raises(TypeError, match="async generator"):

        @resumable_stream("chat:{chat_id}")
        async def not_a_generator(chat_id: str) -> str:
            return chat_id

    with pytest.raises(TypeError, match="unknown parameters"):

        @resumable_stream("chat:{room}")
        async def wrong_name(chat_id: str) -> AsyncIterator[str]:
            yield chat_id

    with pytest.raises(ValueError, match="on_conflict"):
        resumable_stream("chat:{chat_id}", on_conflict="queue")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only name parameters"):
        resumable_stream("chat:{chat_id.attr}")


def test_the_wrapper_is_not_a_generator_for_fastapi() -> None:
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    assert not hasattr(chat, "__wrapped__")
    assert chat.__name__ == "chat"


@pytest.mark.parametrize("name", ["", "done", "error", "cancelled", "reset", "message", "a\nb"])
def test_reserved_or_unsendable_event_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        Event(name, {})


def test_current_producer_outside_a_stream_is_an_error() -> None:
    with pytest.raises(LookupError, match="inside a @resumable_stream generator"):
        current_producer()


def test_public_names_are_exported_sorted() -> None:
    assert fastapi_streamhub.__all__ == sorted(fastapi_streamhub.__all__)
    for name in fastapi_streamhub.__all__:
        assert getattr(fastapi_streamhub, name) is not None


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="lease_ttl_s must be positive"):
        StreamHub(lease_ttl_s=0)
    with pytest.raises(TypeError):
        StreamHub(lease_ttl=5)


def test_endpoint_may_take_the_request_itself() -> None:
    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/echo/{name}")
    @resumable_stream("echo:{name}")
    async def echo(name: str, request: Request) -> AsyncIterator[str]:
        yield f"{name} via {request.method}"

    with TestClient(app) as client:
        events = SSEParser().feed(client.post("/echo/x").text)
    assert [e.json() for e in events] == ["x via POST", {}]


def require_key(x_key: Annotated[str | None, Header()] = None) -> str:
    if x_key != "open-sesame":
        raise HTTPException(401, "no key")
    return x_key


class Caller:
    """A class dependency, declared as a bare `Depends()`.

    Its parameter is not written with `Annotated`: FastAPI before 0.123 cannot read
    an `Annotated` string annotation (this module postpones them) of a class."""

    def __init__(self, x_caller: str | None = Header(None)) -> None:
        if x_caller is None:
            raise HTTPException(403, "who are you?")
        self.name = x_caller


def test_routes_of_an_included_router_are_mounted_with_its_prefix_and_guards() -> None:
    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)
    router = APIRouter()

    @router.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str, caller: Annotated[Caller, Depends()]) -> AsyncIterator[str]:
        yield f"hi {caller.name}"

    app.include_router(router, prefix="/v1", dependencies=[Depends(require_key)])
    both = {"x-key": "open-sesame", "x-caller": "ann"}
    with TestClient(app) as client:
        assert client.post("/v1/chat/1", headers=both).status_code == 200
        for suffix in ("/stream", "/status"):
            assert client.get("/v1/chat/1" + suffix, headers=both).status_code in (200, 204)
            assert client.get("/v1/chat/1" + suffix, headers={"x-caller": "ann"}).status_code == 401
            assert (
                client.get("/v1/chat/1" + suffix, headers={"x-key": "open-sesame"}).status_code
                == 403
            )
        assert client.post("/v1/chat/1/cancel", headers=both).json()["status"] == "done"
        paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/chat/{chat_id}/stream",
        "/v1/chat/{chat_id}/cancel",
        "/v1/chat/{chat_id}/status",
    } <= set(paths)


def test_the_start_route_is_documented_as_an_event_stream() -> None:
    app, _, _ = app_with_init_app()
    with TestClient(app) as client:
        operation = client.get("/openapi.json").json()["paths"]["/chat/{chat_id}"]["post"]
    assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]


def test_a_key_from_a_non_path_parameter_is_refused_at_startup() -> None:
    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{user}:{chat_id}")
    async def chat(chat_id: str, user: str) -> AsyncIterator[str]:
        yield user

    with (
        pytest.raises(ValueError, match=r"names \['user'\], which are not path parameters"),
        TestClient(app),
    ):
        pass


def test_init_app_stops_the_hub_before_the_apps_own_cleanup() -> None:
    order: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        order.append("app cleanup")

    hub = StreamHub(shutdown_grace_s=5)
    app = FastAPI(lifespan=own_lifespan)
    hub.init_app(app)

    @app.post("/slow/{n}")
    @resumable_stream("slow:{n}")
    async def slow(n: str) -> AsyncIterator[str]:
        try:
            yield "started"
            await anyio.sleep(0.2)
            yield "finished"
        finally:
            order.append("producer done")

    with TestClient(app) as client, client.stream("POST", "/slow/1") as response:
        next(response.iter_lines())
    assert order == ["producer done", "app cleanup"]


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="hash tag"):
        StreamHub.from_url("redis://127.0.0.1:1/0", prefix="app{1}:")


def test_a_prefixed_router_mounts_once_with_its_tags_and_guards_once() -> None:
    """A router shared by two apps gets its stream routes once in each app, with the
    router's tags once and its dependency run once per request; the router itself is
    left as declared."""
    calls: list[str] = []

    def count_calls() -> None:
        calls.append("guard")

    router = APIRouter(prefix="/chat", tags=["chat"], dependencies=[Depends(count_calls)])

    @router.post("/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    for _ in range(2):
        hub = StreamHub()
        app = FastAPI(lifespan=hub.lifespan)
        app.include_router(router)
        with TestClient(app) as client:
            assert client.post("/chat/1").status_code == 200
            calls.clear()
            assert client.get("/chat/1/status").json()["status"] == "done"
            assert calls == ["guard"]
            operation = client.get("/openapi.json").json()["paths"]["/chat/{chat_id}/status"]
            assert operation["get"]["tags"] == ["chat"]
        assert served_paths(app).count("/chat/{chat_id}/status") == 1
    assert [route.path for route in router.routes] == ["/chat/{chat_id}"]


def test_fastapis_own_event_source_response_class_is_refused_at_startup() -> None:
    EventSourceResponse = pytest.importorskip("fastapi.sse").EventSourceResponse

    hub = StreamHub()
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/chat/{chat_id}", response_class=EventSourceResponse)
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        yield chat_id

    with pytest.raises(ValueError, match="drop response_class"), TestClient(app):
        pass
