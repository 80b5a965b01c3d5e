"""Steering over HTTP: real uvicorn processes sharing a real redis-server (or cluster).

A message sent to one instance reaches the generator running on the other, once, in
order, even when the Pub/Sub connection that would have announced it is killed, and
every reader, on either instance, sees it as the same `steer` event.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from fastapi_streamhub import mount_stream_routes
from fastapi_streamhub.client import (
    StreamClient,
    StreamConflictError,
    StreamNotFoundError,
    StreamRequestError,
)
from tests.apps.steer_app import create_app
from tests.support.polling import eventually
from tests.support.redis_faults import command
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_events
from tests.support.uvicorn_server import UvicornServer
from tests.test_http import storage_url

pytestmark = pytest.mark.anyio

APP = "tests.apps.steer_app:create_app"
MakeServer = Callable[..., UvicornServer]
_ids = itertools.count()


def start(make_uvicorn_server: MakeServer, redis_url: str | None) -> UvicornServer:
    env = {"TEST_REDIS_URL": redis_url} if redis_url is not None else {}
    return make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")


def run_id() -> str:
    return f"steer{next(_ids)}"


async def record(http: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    return dict((await http.get(f"/debug/runs/{rid}")).json())


async def wait_yielded(http: httpx.AsyncClient, rid: str, at_least: int) -> None:
    """Wait until the generator of run `rid` has yielded `at_least` chunks."""

    async def yielded() -> bool:
        return int((await record(http, rid))["yielded"]) >= at_least

    await eventually(yielded)


async def wait_steered(http: httpx.AsyncClient, rid: str, expected: list[str]) -> None:
    async def arrived() -> bool:
        return len((await record(http, rid))["steered"]) >= len(expected)

    await eventually(arrived, timeout_s=15)
    assert (await record(http, rid))["steered"] == expected


def steers(events: list[SSE]) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.event == "steer"]


def styles(events: list[SSE]) -> list[str]:
    """The style of each token, in order, with each steer event's message in between."""
    found = []
    for event in events:
        if event.event == "steer":
            found.append(f"steer:{event.json()['message']}")
        elif event.event is None or event.event == "message":
            style = event.json().rstrip(" 0123456789")
            if not found or found[-1] != style:
                found.append(style)
    return found


class Readers:
    """Readers of one stream on several instances, each until the terminal event."""

    def __init__(self) -> None:
        self.events: dict[str, list[SSE]] = {}

    async def follow(
        self, name: str, http: httpx.AsyncClient, method: str, url: str, body: Any = None
    ) -> None:
        self.events[name] = await read_events(http, method, url, json=body, timeout_s=40)


@pytest.fixture(params=["redis", "cluster"])
def two_servers(
    request: pytest.FixtureRequest, make_uvicorn_server: MakeServer
) -> tuple[UvicornServer, UvicornServer]:
    url = storage_url(request, request.param)
    return start(make_uvicorn_server, url), start(make_uvicorn_server, url)


async def test_a_steer_sent_to_b_changes_the_answer_generated_on_a(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    rid = run_id()
    readers = Readers()
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:
        group.start_soon(readers.follow, "a", http_a, "POST", f"/chat/{rid}", {})
        await wait_yielded(http_a, rid, 5)
        group.start_soon(readers.follow, "b", http_b, "GET", f"/chat/{rid}/stream")
        short = await http_b.post(f"/chat/{rid}/steer", json="short")
        assert short.status_code == 202, short.text
        await wait_steered(http_a, rid, ["short"])
        stop = await http_b.post(f"/chat/{rid}/steer", json="stop")
        assert stop.status_code == 202, stop.text
    assert (await _record_once(a, rid))["steered"] == ["short", "stop"]
    assert (await _record_once(b, rid))["steered"] == []
    first, second = short.json(), stop.json()
    assert first["generation"] == second["generation"]
    assert first["key"] == f"chat:{rid}"
    for name in ("a", "b"):
        events = readers.events[name]
        assert [e.id for e in events] == [e.id for e in readers.events["a"]]
        assert steers(events) == [
            {"id": first["id"], "source": "client", "message": "short"},
            {"id": second["id"], "source": "client", "message": "stop"},
        ]
        assert styles(events) == ["long", "steer:short", "short", "steer:stop"]
        assert events[-1].event == "done"


async def _record_once(server: UvicornServer, rid: str) -> dict[str, Any]:
    async with server.client() as http:
        return await record(http, rid)


@pytest.mark.parametrize("kill", ["before", "after"])
async def test_a_steer_arrives_once_when_the_pubsub_connection_is_killed(
    redis_server: RedisServer, make_uvicorn_server: MakeServer, kill: str
) -> None:
    """The owner is paused while the message is accepted, and its Pub/Sub connection is
    killed before it can read the signal (`before`: before the accept, so the signal is
    never sent to it; `after`: the signal may sit in its socket when Redis cuts it)."""
    a = start(make_uvicorn_server, redis_server.url)
    b = start(make_uvicorn_server, redis_server.url)
    rid = run_id()
    readers = Readers()
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:
        group.start_soon(readers.follow, "a", http_a, "POST", f"/chat/{rid}", {})
        await wait_yielded(http_a, rid, 5)
        a.pause()
        try:
            if kill == "before":
                assert await command(redis_server, "CLIENT", "KILL", "TYPE", "pubsub") >= 1
            accepted = await http_b.post(f"/chat/{rid}/steer", json="short")
            if kill == "after":
                assert await command(redis_server, "CLIENT", "KILL", "TYPE", "pubsub") >= 1
        finally:
            a.resume()
        assert accepted.status_code == 202, accepted.text
        await wait_steered(http_a, rid, ["short"])
        group.start_soon(readers.follow, "b", http_b, "GET", f"/chat/{rid}/stream")
        assert (await http_b.post(f"/chat/{rid}/steer", json="stop")).status_code == 202
    assert (await _record_once(a, rid))["steered"] == ["short", "stop"]
    for events in readers.events.values():
        assert [s["message"] for s in steers(events)] == ["short", "stop"]
        assert steers(events)[0]["id"] == accepted.json()["id"]
        assert styles(events) == ["long", "steer:short", "short", "steer:stop"]
    assert [e.id for e in readers.events["a"]] == [e.id for e in readers.events["b"]]


async def test_steer_answers_each_refusal_with_its_status(
    make_uvicorn_server: MakeServer,
) -> None:
    server = start(make_uvicorn_server, None)
    rid = run_id()
    async with server.client() as http:
        unknown = await http.post(f"/chat/{rid}/steer", json="hello")
        assert unknown.status_code == 404, unknown.text
        events = await read_events(http, "POST", f"/chat/{rid}", json={"count": 2})
        assert events[-1].event == "done"
        ended = await http.post(f"/chat/{rid}/steer", json="too late")
        assert ended.status_code == 409, ended.text
        assert "running" in ended.json()["detail"]

    readers = Readers()
    live = run_id()
    async with server.client() as http, anyio.create_task_group() as group:
        group.start_soon(readers.follow, "a", http, "POST", f"/chat/{live}", {})
        await wait_yielded(http, live, 1)
        too_big = await http.post(f"/chat/{live}/steer", json="x" * 2000)
        assert too_big.status_code == 413, too_big.text
        not_json = await http.post(
            f"/chat/{live}/steer",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert not_json.status_code == 422, not_json.text
        assert not_json.json()["detail"][0]["type"] == "json_invalid"
        nested = {"text": "use the 2024 figures", "tags": ["a", 1, None, True]}
        ok = await http.post(f"/chat/{live}/steer", json=nested)
        assert ok.status_code == 202, ok.text
        await wait_steered(http, live, [nested])  # type: ignore[list-item]
        assert (await http.post(f"/chat/{live}/steer", json="stop")).status_code == 202
    assert steers(readers.events["a"])[0] == {
        "id": ok.json()["id"],
        "source": "client",
        "message": nested,
    }


async def test_steer_is_guarded_like_the_route_it_serves(
    make_uvicorn_server: MakeServer,
) -> None:
    server = start(make_uvicorn_server, None)
    rid = run_id()
    readers = Readers()
    alice = {"authorization": "Bearer alice"}
    async with server.client() as http, anyio.create_task_group() as group:

        async def follow() -> None:
            readers.events["a"] = await read_events(
                http, "POST", f"/private/{rid}", json={}, headers=alice, timeout_s=40
            )

        group.start_soon(follow)
        await wait_yielded(http, rid, 1)
        anonymous = await http.post(f"/private/{rid}/steer", json="short")
        assert anonymous.status_code == 401, anonymous.text
        bob = await http.post(
            f"/private/{rid}/steer", json="short", headers={"authorization": "Bearer bob"}
        )
        assert bob.status_code == 403, bob.text
        assert (
            await http.post(f"/private/{rid}/steer", json="stop", headers=alice)
        ).status_code == 202
    assert (await _record_once(server, rid))["steered"] == ["stop"]


def test_steer_is_in_the_schema_with_its_body_and_answers() -> None:
    app = create_app()
    mount_stream_routes(app)
    operation = app.openapi()["paths"]["/chat/{run_id}/steer"]["post"]
    assert operation["requestBody"]["content"] == {"application/json": {"schema": {}}}
    assert operation["requestBody"]["required"] is True
    assert {"202", "404", "409", "413", "422", "429", "503"} <= set(operation["responses"])
    schema = operation["responses"]["202"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SteerBody"}
    assert json.dumps(operation)  # serialisable as served


async def test_the_python_client_steers_and_names_each_refusal(
    make_uvicorn_server: MakeServer,
) -> None:
    server = start(make_uvicorn_server, None)
    rid = run_id()
    readers = Readers()
    async with (
        server.client() as http,
        StreamClient(server.base_url) as client,
        anyio.create_task_group() as group,
    ):
        with pytest.raises(StreamNotFoundError):
            await client.steer(f"/chat/{rid}", "hello")
        group.start_soon(readers.follow, "a", http, "POST", f"/chat/{rid}", {})
        await wait_yielded(http, rid, 1)
        steered = await client.steer(f"/chat/{rid}", "short")
        assert steered.key == f"chat:{rid}"
        await wait_steered(http, rid, ["short"])
        with pytest.raises(StreamRequestError) as too_big:
            await client.steer(f"/chat/{rid}", "x" * 2000)
        assert too_big.value.status_code == 413
        await client.steer(f"/chat/{rid}", "stop")
    async with StreamClient(server.base_url) as client:
        with pytest.raises(StreamConflictError):
            await client.steer(f"/chat/{rid}", "too late")
    assert steers(readers.events["a"])[0]["id"] == steered.id


def id_order(message_id: str) -> tuple[int, int]:
    first, _, second = message_id.partition("-")
    return int(first), int(second)


async def test_concurrent_steers_from_both_instances_arrive_once_each_in_accepted_order(
    two_servers: tuple[UvicornServer, UvicornServer],
) -> None:
    a, b = two_servers
    rid = run_id()
    readers = Readers()
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:
        group.start_soon(readers.follow, "a", http_a, "POST", f"/chat/{rid}", {})
        await wait_yielded(http_a, rid, 2)
        accepted: dict[str, str] = {}

        async def steer(http: httpx.AsyncClient, text: str) -> None:
            response = await http.post(f"/chat/{rid}/steer", json=text)
            assert response.status_code == 202, response.text
            accepted[response.json()["id"]] = text

        async with anyio.create_task_group() as senders:
            for i in range(20):
                senders.start_soon(steer, http_a if i % 2 else http_b, f"m{i}")
        in_order = [accepted[i] for i in sorted(accepted, key=id_order)]
        await wait_steered(http_a, rid, in_order)
        await steer(http_b, "stop")
    assert (await _record_once(a, rid))["steered"] == [*in_order, "stop"]
    events = readers.events["a"]
    assert [s["message"] for s in steers(events)] == [*in_order, "stop"]
    assert len({s["id"] for s in steers(events)}) == 21
