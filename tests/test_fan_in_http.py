"""Fan-in across processes over HTTP (issue 11): uvicorn instances sharing one real Redis.

Instance A runs the planner and its local `search` source; instance B (or a third
process) joins the generation as `worker`. Readers on each instance, and readers
resuming from random cursors on either, must all see the one order: the same ids, no
gap, no duplicate. A joined process SIGKILLed mid-stream ends only its own source, with
`producer_lost`, and the others finish.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import httpx
import pytest

from fastapi_streamhub import StreamEvent
from fastapi_streamhub.client import StreamClient
from tests.support.fan_in import by_source, source_ends
from tests.support.polling import eventually
from tests.support.sse import SSE, read_events
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.fan_in_app:create_app"


def as_events(received: list[SSE]) -> list[StreamEvent]:
    """What a browser got, as the Python API reads it."""
    found = []
    for sse in received:
        generation, _, seq = sse.id.rpartition(":")
        name = None if sse.event == "message" else sse.event
        found.append(StreamEvent(generation, int(seq), name, sse.data))
    return found


def assert_one_order(events: list[StreamEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.generation for e in events}) == 1
    assert events[-1].event == "done"


def start_instances(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str, count: int
) -> list[UvicornServer]:
    env = {"TEST_REDIS_URL": redis_url, "TEST_LEASE_S": "1"}
    return [make_uvicorn_server(APP, factory=True, env=env) for _ in range(count)]


async def started(http: httpx.AsyncClient, path: str) -> None:
    """Return once the generation at `path` exists (its start request was taken)."""

    async def exists() -> bool:
        return (await http.get(f"{path}/status")).status_code == 200

    await eventually(exists, timeout_s=20)


async def read_from(server: UvicornServer, path: str, cursor: str | None = None) -> list[SSE]:
    headers = {} if cursor is None else {"Last-Event-ID": cursor}
    async with server.client() as http:
        return await read_events(http, "GET", path, headers=headers, timeout_s=60)


async def test_three_sources_on_two_processes_one_order_for_every_reader(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str
) -> None:
    a, b = start_instances(make_uvicorn_server, redis_url, 2)
    rng = random.Random(11)
    got: dict[str, list[SSE]] = {}
    resumed: list[tuple[str, list[SSE]]] = []
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:

        async def start() -> None:
            spec = {"count": 30, "delay_ms": 15, "wait_for": "worker"}
            got["a"] = await read_events(http_a, "POST", "/fan/r1", json=spec, timeout_s=60)

        group.start_soon(start)
        await started(http_a, "/fan/r1")
        answer = await http_b.post("/join/r1", json={"source": "worker", "count": 25})
        assert answer.status_code == 202, answer.text
        got["b"] = await read_from(b, "/fan/r1/stream")
    events = as_events(got["a"])
    assert as_events(got["b"]) == events
    assert_one_order(events)
    assert by_source(events) == {
        "main": by_source(events)["main"],
        "search": [f"search{i} " for i in range(30)],
        "worker": [f"worker{i} " for i in range(25)],
    }
    assert by_source(events)["main"][:30] == [f"plan{i} " for i in range(30)]
    assert source_ends(events) == {"main": "done", "search": "done", "worker": "done"}
    for _ in range(8):
        index = rng.randrange(len(events) - 1)
        server = rng.choice([a, b])
        cursor = events[index].id
        resumed.append((cursor, await read_from(server, "/fan/r1/stream", cursor)))
    for cursor, received in resumed:
        seq = int(cursor.rpartition(":")[2])
        assert as_events(received) == events[seq:], cursor
    async with StreamClient(b.base_url) as client:  # the Python client, on httpx-sse
        read = [event async for event in client.attach("/fan/r1")]
    assert read == events
    assert [e.source for e in read] == [e.source for e in events]


async def test_readers_resuming_mid_stream_on_either_instance_see_the_same_order(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str
) -> None:
    """Readers that drop and resume while the answer streams, alternating instances."""
    a, b = start_instances(make_uvicorn_server, redis_url, 2)
    rng = random.Random(7)
    async with a.client() as http_a, b.client() as http_b, anyio.create_task_group() as group:
        whole: list[SSE] = []

        async def start() -> None:
            spec = {"count": 40, "delay_ms": 15, "wait_for": "worker"}
            whole.extend(await read_events(http_a, "POST", "/fan/r2", json=spec, timeout_s=60))

        group.start_soon(start)
        await started(http_a, "/fan/r2")
        answer = await http_b.post("/join/r2", json={"source": "worker", "count": 30})
        assert answer.status_code == 202, answer.text
        pieced: list[SSE] = []
        cursor: str | None = None
        servers = [a, b]
        while not pieced or pieced[-1].event != "done":
            headers = {} if cursor is None else {"Last-Event-ID": cursor}
            async with servers[len(pieced) % 2].client() as http:
                part = await read_events(
                    http, "GET", "/fan/r2/stream", headers=headers, limit=rng.randint(1, 9)
                )
            pieced += part
            cursor = pieced[-1].id
    assert as_events(pieced) == as_events(whole)
    assert_one_order(as_events(whole))
    assert source_ends(as_events(whole)) == {"main": "done", "search": "done", "worker": "done"}


async def test_a_joined_process_killed_mid_stream_ends_alone_as_producer_lost(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str
) -> None:
    a, b, worker = start_instances(make_uvicorn_server, redis_url, 3)
    got: dict[str, list[SSE]] = {}
    async with a.client() as http_a, worker.client() as http_w, anyio.create_task_group() as group:

        async def start() -> None:
            spec = {"count": 10, "delay_ms": 15, "wait_for": "worker"}
            got["a"] = await read_events(http_a, "POST", "/fan/r3", json=spec, timeout_s=60)

        async def follow_on_b() -> None:
            got["b"] = await read_from(b, "/fan/r3/stream")

        group.start_soon(start)
        await started(http_a, "/fan/r3")
        answer = await http_w.post("/join/r3", json={"source": "worker", "count": 100_000})
        assert answer.status_code == 202, answer.text
        group.start_soon(follow_on_b)
        async with b.client() as http_b:
            seen = await read_events(http_b, "GET", "/fan/r3/stream", limit=200, timeout_s=30)
            while sum(e.event == "source" and '"worker"' in e.data for e in seen) < 5:
                after = {"Last-Event-ID": seen[-1].id}
                seen += await read_events(http_b, "GET", "/fan/r3/stream", headers=after, limit=50)
        worker.kill()
    events = as_events(got["a"])
    assert as_events(got["b"]) == events
    assert_one_order(events)
    lost = [e.sourced for e in events if e.source == "worker" and e.sourced.terminal]
    assert lost == [
        ("worker", "error", {"message": "The source stopped answering.", "reason": "producer_lost"})
    ]
    assert source_ends(events) == {"search": "done", "worker": "error", "main": "done"}
    worker_values = by_source(events)["worker"]
    assert worker_values == [f"worker{i} " for i in range(len(worker_values))]
    assert by_source(events)["search"] == [f"search{i} " for i in range(10)]
    lost_at = next(i for i, e in enumerate(events) if e.source == "worker" and e.sourced.terminal)
    assert any(e.source == "main" for e in events[lost_at + 1 :]), "the planner went on"


async def test_a_joined_process_stalled_past_its_lease_is_fenced_out_when_it_wakes(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str
) -> None:
    """SIGSTOP the joined process: the owner ends its source (`producer_lost`) and goes on.
    SIGCONT it while the answer still runs: what it posts then, under its stale token, is
    refused by the owner; the answer never shows the source again."""
    a, worker = start_instances(make_uvicorn_server, redis_url, 2)
    got: dict[str, list[SSE]] = {}
    async with a.client() as http_a, worker.client() as http_w, anyio.create_task_group() as group:

        async def start() -> None:
            spec = {"count": 5, "delay_ms": 15, "wait_for": "worker", "after": 150}
            got["a"] = await read_events(http_a, "POST", "/fan/r4", json=spec, timeout_s=60)

        group.start_soon(start)
        await started(http_a, "/fan/r4")
        answer = await http_w.post("/join/r4", json={"source": "worker", "count": 100_000})
        assert answer.status_code == 202, answer.text
        seen: list[SSE] = []
        while sum(e.event == "source" and '"worker"' in e.data for e in seen) < 5:
            after = {"Last-Event-ID": seen[-1].id} if seen else {}
            seen += await read_events(http_a, "GET", "/fan/r4/stream", headers=after, limit=10)
        worker.pause()
        while not any('"producer_lost"' in e.data for e in seen):
            after = {"Last-Event-ID": seen[-1].id}
            seen += await read_events(http_a, "GET", "/fan/r4/stream", headers=after, limit=10)
        worker.resume()
    events = as_events(got["a"])
    assert_one_order(events)
    assert source_ends(events) == {"search": "done", "worker": "error", "main": "done"}
    lost_at = next(i for i, e in enumerate(events) if e.source == "worker" and e.sourced.terminal)
    assert not any(e.source == "worker" for e in events[lost_at + 1 :])
    assert by_source(events)["main"][-150:] == [f"after{j} " for j in range(150)]
    assert "refused: its token is stale" in a.logs(), "the woken process posted nothing"
