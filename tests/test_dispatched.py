"""`@dispatched_stream`: the FastAPI side of streams that a worker produces, in process.

The "queue" here is a task group of the app's lifespan that runs `hub.run`, so the
worker shares the process; `tests/test_workers.py` runs a real Taskiq worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import pytest
from anyio.abc import TaskGroup
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from fastapi_streamhub import StreamHub, StreamJob, dispatched_stream
from tests.support.sse import SSEParser


def require_user(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(401, "who are you?")
    return x_user


class App:
    """An app whose jobs run in its own process, or wait forever (`run_jobs=False`)."""

    def __init__(self, *, run_jobs: bool = True) -> None:
        self.hub = StreamHub(start_timeout_s=5)
        self.jobs: list[StreamJob] = []
        self.calls: list[str] = []
        self.run_jobs = run_jobs
        self._workers: TaskGroup | None = None
        self.app = FastAPI(lifespan=self.lifespan)
        self._routes()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with self.hub.lifespan(app) as state, anyio.create_task_group() as workers:
            self._workers = workers
            yield state
            workers.cancel_scope.cancel()

    async def send(self, job: StreamJob) -> None:
        self.jobs.append(job)
        if self.run_jobs and self._workers is not None:
            self._workers.start_soon(self.hub.run, job, self.answer(**job.params))

    async def answer(self, text: str) -> AsyncIterator[str]:
        for word in text.split():
            yield word

    def _routes(self) -> None:
        @self.app.post("/chat/{chat_id}", dependencies=[Depends(require_user)], tags=["chat"])
        @dispatched_stream("chat:{chat_id}", dispatch=self.send)
        async def chat(chat_id: str, text: str) -> dict[str, Any]:
            """Answer `text` in a worker."""
            self.calls.append(chat_id)
            if text == "refuse":
                raise HTTPException(400, "not that")
            return {"text": text}

        @self.app.post("/solo/{run_id}")
        @dispatched_stream("solo:{run_id}", dispatch=self.send, on_conflict="reject")
        async def solo(run_id: str) -> dict[str, Any]:
            return {"text": "solo"}


@pytest.fixture
def served() -> Iterator[tuple[App, TestClient]]:
    app = App()
    with TestClient(app.app) as client:
        yield app, client


USER = {"x-user": "ann"}


def test_the_post_is_answered_with_the_workers_events(served: tuple[App, TestClient]) -> None:
    app, client = served
    response = client.post("/chat/1", params={"text": "hello there world"}, headers=USER)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = SSEParser().feed(response.text)
    assert [(e.event, e.json()) for e in events] == [
        ("message", "hello"),
        ("message", "there"),
        ("message", "world"),
        ("done", {}),
    ]
    generation = app.jobs[0].generation
    assert [e.id for e in events] == [f"{generation}:{seq}" for seq in range(1, 5)]
    assert app.jobs == [StreamJob("chat:1", generation, {"text": "hello there world"})]
    status = client.get("/chat/1/status", headers=USER).json()
    assert (status["status"], status["pending"], status["last_seq"]) == ("done", False, 4)
    resumed = client.get("/chat/1/stream", headers={**USER, "Last-Event-ID": events[1].id})
    assert [e.json() for e in SSEParser().feed(resumed.text)] == ["world", {}]


def test_routes_are_mounted_with_the_routes_guards_and_documented(
    served: tuple[App, TestClient],
) -> None:
    _, client = served
    assert client.post("/chat/1", params={"text": "x"}).status_code == 401
    client.post("/chat/1", params={"text": "x"}, headers=USER)
    for method, suffix in (("GET", "/stream"), ("GET", "/status"), ("POST", "/cancel")):
        assert client.request(method, "/chat/1" + suffix).status_code == 401
        assert client.request(method, "/chat/1" + suffix, headers=USER).status_code in (200, 204)
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/chat/{chat_id}/stream", "/chat/{chat_id}/cancel", "/chat/{chat_id}/status"} <= set(
        paths
    )
    start = paths["/chat/{chat_id}"]["post"]
    assert list(start["responses"]["200"]["content"]) == ["text/event-stream"]
    assert start["tags"] == ["chat"] and start["description"] == "Answer `text` in a worker."
    assert "pending" in schema["components"]["schemas"]["StatusBody"]["properties"]


def test_a_start_that_attaches_does_not_dispatch_again() -> None:
    app = App(run_jobs=False)
    with TestClient(app.app) as client:
        status = None

        async def pending() -> None:
            nonlocal status
            job = app.jobs[0]
            status = await app.hub.status(job.key)
            await app.hub.run(job, app.answer("late but fine"))

        with client.stream("POST", "/chat/7", params={"text": "a"}, headers=USER) as first:
            assert first.status_code == 200
            with client.stream("POST", "/chat/7", params={"text": "b"}, headers=USER) as second:
                assert second.status_code == 200
                client.portal.call(pending)  # type: ignore[union-attr]
                texts = [e.json() for e in SSEParser().feed(second.read().decode())]
        assert texts == ["late", "but", "fine", {}]
        assert app.calls == ["7"] and len(app.jobs) == 1
        assert status is not None and status.pending and not status.producer_running
        with client.stream("POST", "/solo/1") as first:
            assert first.status_code == 200
            assert client.post("/solo/1").status_code == 409


def test_an_endpoint_that_raises_ends_its_stream_at_once(served: tuple[App, TestClient]) -> None:
    app, client = served
    response = client.post("/chat/9", params={"text": "refuse"}, headers=USER)
    assert response.status_code == 400 and response.json() == {"detail": "not that"}
    assert app.jobs == []
    status = client.get("/chat/9/status", headers=USER).json()
    assert (status["status"], status["pending"]) == ("error", False)
    replay = SSEParser().feed(client.get("/chat/9/stream", headers=USER).text)
    assert [(e.event, e.json()["reason"]) for e in replay] == [("error", "not_sent")]
    again = client.post("/chat/9", params={"text": "now fine"}, headers=USER)
    assert [e.json() for e in SSEParser().feed(again.text)] == ["now", "fine", {}]


def test_the_decorator_refuses_misuse() -> None:
    async def send(job: StreamJob) -> None:
        return None

    with pytest.raises(TypeError, match="coroutine function"):

        @dispatched_stream("chat:{chat_id}", dispatch=send)
        async def generator(chat_id: str) -> AsyncIterator[str]:
            yield chat_id

    with pytest.raises(TypeError, match="unknown parameters"):

        @dispatched_stream("chat:{room}", dispatch=send)
        async def wrong(chat_id: str) -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError, match="on_conflict"):
        dispatched_stream("chat:{chat_id}", dispatch=send, on_conflict="queue")  # type: ignore[arg-type]
