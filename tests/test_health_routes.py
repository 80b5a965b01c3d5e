"""The readiness and liveness routes against a real redis-server: frozen (SIGSTOP) and
killed, readiness answers 503 with what is wrong, and 200 again once Redis is back;
liveness answers 200 throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from fastapi_streamhub import StreamHub, health_router
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

TASKS = {
    "writer",
    "leases",
    "listener",
    "watchdog",
    "send guard",
    "compaction",
    "finish hooks",
    "abandonment",
    "inboxes",
}


def app_of(hub: StreamHub, **paths: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(hub, **paths))
    return app


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[httpx.AsyncClient]:
    hub = StreamHub.from_url(redis_server.url, socket_timeout_s=1.0, shutdown_grace_s=0.1)
    transport = httpx.ASGITransport(app=app_of(hub))
    async with hub, httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def ready(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/health/ready")
    return response.status_code, response.json()


async def until_ready(client: httpx.AsyncClient) -> dict[str, Any]:
    async def is_ready() -> bool:
        return (await ready(client))[0] == 200

    await eventually(is_ready, timeout_s=20)
    return (await ready(client))[1]


async def test_ready_when_started_with_every_task_running(client: httpx.AsyncClient) -> None:
    status, body = await ready(client)
    assert status == 200
    assert body["ready"] is body["started"] is body["storage_ok"] is True
    assert body["storage_error"] is None
    assert set(body["tasks"]) == TASKS
    assert all(task["running"] for task in body["tasks"].values())
    assert (body["producers"], body["watched_keys"]) == (0, 0)


async def test_a_frozen_redis_makes_it_unready_until_it_thaws(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    await anyio.to_thread.run_sync(redis_server.pause)
    try:
        status, body = await ready(client)
        assert status == 503
        assert (body["ready"], body["started"], body["storage_ok"]) == (False, True, False)
        assert body["storage_error"]
        live = await client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"alive": True, "started": True})
    finally:
        await anyio.to_thread.run_sync(redis_server.resume)
    body = await until_ready(client)
    assert body["storage_error"] is None


async def test_a_killed_redis_makes_it_unready_until_it_is_back(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    await anyio.to_thread.run_sync(redis_server.kill)
    status, body = await ready(client)
    assert status == 503
    assert (body["ready"], body["storage_ok"]) == (False, False)
    assert "Redis is unavailable" in body["storage_error"]
    assert (await client.get("/health/live")).status_code == 200
    await anyio.to_thread.run_sync(redis_server.restart)
    body = await until_ready(client)
    assert body["tasks"]["listener"]["running"] is True


async def test_unready_before_start_and_after_shutdown() -> None:
    hub = StreamHub(shutdown_grace_s=0.1)
    transport = httpx.ASGITransport(app=app_of(hub, ready_path="/r", live_path="/l"))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = await client.get("/r")
        assert (before.status_code, before.json()["started"], before.json()["tasks"]) == (
            503,
            False,
            {},
        )
        async with hub:

            async def is_ready() -> bool:  # its tasks start running at the next checkpoint
                return (await client.get("/r")).status_code == 200

            await eventually(is_ready)
            assert (await client.get("/l")).json() == {"alive": True, "started": True}
        after = await client.get("/r")
        assert (after.status_code, after.json()["ready"]) == (503, False)
        assert (await client.get("/l")).json() == {"alive": True, "started": False}


async def test_the_routes_are_in_the_openapi_schema_and_liveness_is_optional() -> None:
    hub = StreamHub()
    schema = app_of(hub).openapi()
    answers = schema["paths"]["/health/ready"]["get"]["responses"]
    assert set(answers) == {"200", "503"}
    for answer in answers.values():
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/HubHealth"
        }
    assert "/health/live" in schema["paths"]
    assert "/health/live" not in app_of(hub, live_path=None).openapi()["paths"]
