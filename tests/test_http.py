"""End to end through HTTP: real uvicorn processes, real redis-server, exact bytes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from tests.apps.generator_app import token
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_events, read_stream
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.generator_app:create_app"
_ids = itertools.count()

MakeServer = Callable[..., UvicornServer]


def run_id() -> str:
    return f"run{next(_ids)}"


def start(make_uvicorn_server: MakeServer, redis_url: str | None) -> UvicornServer:
    env = {"TEST_REDIS_URL": redis_url} if redis_url is not None else {}
    return make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")


def storage_url(request: pytest.FixtureRequest, kind: str) -> str | None:
    """The URL of this test's storage: its own redis-server, or the session's cluster."""
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


def seqs(events: list[SSE]) -> list[int]:
    return [int(e.id.rpartition(":")[2]) for e in events]


def text(events: list[SSE]) -> str:
    return "".join(e.json() for e in events if e.event == "message")


def expected(count: int) -> str:
    return "".join(token(i) for i in range(count))


async def debug(http: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    response = await http.get(f"/debug/runs/{rid}")
    return dict(response.json())


async def test_resume_on_another_instance_is_exact(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    rid = run_id()
    async with a.client() as http_a, b.client() as http_b:
        first = await read_events(
            http_a, "POST", f"/gen/{rid}", json={"count": 300, "delay_ms": 2}, limit=40
        )
        assert len(first) == 40
        assert all(e.has_id for e in first)
        rest = await read_events(
            http_b, "GET", f"/gen/{rid}/stream", headers={"Last-Event-ID": first[-1].id}
        )
    everything = first + rest
    assert text(everything) == expected(300)
    assert seqs(everything) == list(range(1, 302))
    assert len({e.id for e in everything}) == 301
    assert everything[-1].event == "done"
    assert {e.id.rpartition(":")[0] for e in everything} == {first[0].id.rpartition(":")[0]}


async def test_cancel_on_b_stops_the_generator_on_a(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    rid = run_id()
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:
        results: dict[str, list[SSE]] = {}

        async def follow(name: str, http: httpx.AsyncClient, method: str, url: str) -> None:
            body = {"count": 1_000_000, "delay_ms": 5} if method == "POST" else None
            results[name] = await read_events(http, method, url, json=body, timeout_s=20)

        group.start_soon(follow, "a", http_a, "POST", f"/gen/{rid}")

        async def yielding() -> bool:
            return (await debug(http_a, rid))["yielded"] >= 5

        await eventually(yielding)
        group.start_soon(follow, "b", http_b, "GET", f"/gen/{rid}/stream")
        response = await http_b.post(f"/gen/{rid}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["cancelled"] is True
    assert body["stopped"] is True
    assert body["status"] == "cancelled"
    record = await _debug_once(a, rid)
    assert record["starts"] == 1
    assert record["finally"] == 1
    for name in ("a", "b"):
        assert results[name][-1].event == "cancelled"
        assert text(results[name]) == expected(len(results[name]) - 1)
    assert results["a"][-1].id == results["b"][-1].id
    assert seqs(results["a"])[-1] == body["last_seq"]


async def _debug_once(server: UvicornServer, rid: str) -> dict[str, Any]:
    async with server.client() as http:
        return await debug(http, rid)


async def test_simultaneous_starts_run_the_generator_once(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    rid = run_id()
    results: list[list[SSE]] = []
    async with a.client() as http_a, b.client() as http_b:

        async def begin(http: httpx.AsyncClient) -> None:
            body = {"count": 30, "delay_ms": 5}
            results.append(await read_events(http, "POST", f"/gen/{rid}", json=body))

        async with anyio.create_task_group() as group:
            for http in (http_a, http_a, http_b, http_b):
                group.start_soon(begin, http)
        starts = (await debug(http_a, rid))["starts"] + (await debug(http_b, rid))["starts"]
    assert starts == 1
    assert all(r == results[0] for r in results)
    assert text(results[0]) == expected(30)


async def test_client_leaving_does_not_stop_the_generator(server: UvicornServer) -> None:
    rid = run_id()
    async with server.client() as http:
        first = await read_events(
            http, "POST", f"/gen/{rid}", json={"count": 60, "delay_ms": 5}, limit=5
        )
        assert len(first) == 5
        everything = await read_events(http, "GET", f"/gen/{rid}/stream")
        record = await debug(http, rid)
    assert text(everything) == expected(60)
    assert everything[-1].event == "done"
    assert record == {"starts": 1, "yielded": 60, "finally": 1}


async def test_finished_stream_resume_answers(server: UvicornServer) -> None:
    rid = run_id()
    async with server.client() as http:
        run = await read_events(http, "POST", f"/gen/{rid}", json={"count": 10})
        generation = run[0].id.rpartition(":")[0]
        middle = await read_events(
            http, "GET", f"/gen/{rid}/stream", params={"last_event_id": run[4].id}
        )
        assert middle == run[5:]
        finished = await read_stream(
            http, "GET", f"/gen/{rid}/stream", headers={"Last-Event-ID": run[-1].id}
        )
        assert finished.status_code == 204
        assert finished.events == []
        rerun = await read_events(http, "POST", f"/gen/{rid}", json={"count": 3})
        assert rerun[0].id.rpartition(":")[0] != generation
        reset = await read_events(
            http, "GET", f"/gen/{rid}/stream", headers={"Last-Event-ID": run[4].id}
        )
        assert reset[0].event == "reset"
        assert reset[0].id == rerun[0].id.rpartition(":")[0] + ":0"
        assert reset[1:] == rerun
        for bad in ["garbage", f"{generation}:-1", f"{generation}:x", "a:1:2", ":5"]:
            response = await http.get(f"/gen/{rid}/stream", headers={"Last-Event-ID": bad})
            assert response.status_code == 400
            assert "malformed cursor" in response.json()["detail"]
        missing = await http.get(f"/gen/{run_id()}/stream")
        assert missing.status_code == 404
        assert "no stream" in missing.json()["detail"]


async def test_wire_format_headers_retry_and_json_data(server: UvicornServer) -> None:
    rid = run_id()
    async with server.client() as http:
        stream = await read_stream(http, "POST", f"/gen/{rid}", json={"count": 2})
        raw = await http.get(f"/gen/{rid}/stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.retry == 2000
    generation = stream.events[0].id.rpartition(":")[0]
    assert raw.text == (
        "retry: 2000\n\n"
        f'id: {generation}:1\ndata: "tok0 "\n\n'
        f'id: {generation}:2\ndata: "tok1 "\n\n'
        f"id: {generation}:3\nevent: done\ndata: {{}}\n\n"
    )


async def test_status_and_reject_on_conflict(server: UvicornServer) -> None:
    rid = run_id()
    async with server.client() as http:
        first = await read_events(
            http, "POST", f"/exclusive/{rid}", json={"count": 200, "delay_ms": 5}, limit=1
        )
        conflict = await http.post(f"/exclusive/{rid}", json={"count": 1})
        assert conflict.status_code == 409
        status = (await http.get(f"/exclusive/{rid}/status")).json()
        assert status["status"] == "active"
        assert status["generation"] == first[0].id.rpartition(":")[0]
        assert status["producer_running"] is True
        cancelled = (await http.post(f"/exclusive/{rid}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        status = (await http.get(f"/exclusive/{rid}/status")).json()
        assert status["last_event_id"] == f"{status['generation']}:{status['last_seq']}"
        assert (await http.get(f"/exclusive/{run_id()}/status")).status_code == 404


async def test_mounted_routes_are_documented(server: UvicornServer) -> None:
    async with server.client() as http:
        schema = (await http.get("/openapi.json")).json()
    paths = schema["paths"]
    assert paths["/gen/{run_id}/stream"]["get"]["summary"] == "Resume the stream"
    assert (
        "text/event-stream" in paths["/gen/{run_id}/stream"]["get"]["responses"]["200"]["content"]
    )
    assert paths["/gen/{run_id}/cancel"]["post"]["summary"] == "Cancel the stream"
    assert paths["/gen/{run_id}/status"]["get"]["summary"] == "Stream status"
    names = {p["name"] for p in paths["/gen/{run_id}/stream"]["get"]["parameters"]}
    assert names == {"run_id", "last_event_id", "Last-Event-ID"}


async def test_routes_keep_the_wrapped_routes_auth(server: UvicornServer) -> None:
    rid = run_id()
    base = f"/private/{rid}"
    async with server.client() as anonymous:
        assert (await anonymous.post(base, json={"count": 1})).status_code == 401
        run = await read_events(
            anonymous,
            "POST",
            base,
            json={"count": 100, "delay_ms": 5},
            headers={"Authorization": "Bearer bob"},
            limit=1,
        )
        assert run[0].json() == "tok0 "
        for method, suffix in [("GET", "/stream"), ("POST", "/cancel"), ("GET", "/status")]:
            response = await anonymous.request(method, base + suffix)
            assert response.status_code == 401, suffix
            response = await anonymous.request(
                method, base + suffix, headers={"Authorization": "Bearer mallory"}
            )
            assert response.status_code == 403, suffix
        bob = {"Authorization": "Bearer bob"}
        assert (await anonymous.get(base + "/status", headers=bob)).status_code == 200
        refused = await anonymous.post(base + "/cancel", headers=bob)
        assert refused.status_code == 403
        alice = {"Authorization": "Bearer alice"}
        assert (await anonymous.post(base + "/cancel", headers=alice)).status_code == 200
