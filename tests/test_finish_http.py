"""What a generation leaves when it ends, end to end: real uvicorn instances on one
Redis (or Cluster). The result route while running and after each kind of end, the
cancel receipt, the finish hook (exactly once; again on another instance after the one
that ran it is SIGKILLed between the terminal event and the hook), abandonment counted
across instances, and the delete route."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.polling import eventually
from tests.support.sse import read_events
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.finish_app:create_app"
AUTH = {"Authorization": "Bearer alice"}
_ids = itertools.count()

MakeServer = Callable[..., UvicornServer]


def run_id() -> str:
    return f"run{next(_ids)}"


def words(count: int) -> str:
    return "".join(f"w{i} " for i in range(count))


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    return tmp_path / "hooks.jsonl"


def hook_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture(params=["redis", "cluster"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return str(request.getfixturevalue("shared_redis_cluster").url)


@pytest.fixture
def start(make_uvicorn_server: MakeServer, storage: str, hook_log: Path) -> Callable[..., Any]:
    def make(**env: str) -> UvicornServer:
        settings = {"TEST_REDIS_URL": storage, "TEST_HOOK_LOG": str(hook_log), **env}
        return make_uvicorn_server(APP, factory=True, env=settings, ready_path="/docs")

    return make


async def result_of(http: httpx.AsyncClient, rid: str, **params: str) -> httpx.Response:
    return await http.get(f"/answer/{rid}/result", headers=AUTH, params=params)


async def test_the_result_route_while_running_and_after_each_end(
    start: Callable[..., UvicornServer],
) -> None:
    a, b = start(), start()
    running, failed = run_id(), run_id()
    async with a.client() as http_a, b.client() as http_b:
        first = await read_events(
            http_a,
            "POST",
            f"/answer/{running}",
            json={"count": 40, "delay_ms": 20},
            headers=AUTH,
            limit=3,
        )
        partial = (await result_of(http_b, running)).json()
        assert partial["status"] == "running" and partial["ended_at"] is None
        assert partial["text"].startswith(words(3))
        rest = await read_events(
            http_b,
            "GET",
            f"/answer/{running}/stream",
            headers={**AUTH, "Last-Event-ID": first[-1].id},
        )
        done = (await result_of(http_b, running)).json()
        assert (done["status"], done["text"]) == ("done", words(40))
        assert done["metadata"] == {"usage": {"tokens": 40}} == done["end"]
        assert done["last_event_id"] == rest[-1].id
        assert done["generation"] == first[0].id.rpartition(":")[0]
        assert done["started_at"] <= done["ended_at"]
        await read_events(
            http_a, "POST", f"/answer/{failed}", json={"count": 2, "fail": True}, headers=AUTH
        )
        error = (await result_of(http_b, failed)).json()
        assert (error["status"], error["text"]) == ("error", words(2))
        assert error["end"] == {"message": "The model gave up.", "reason": "failed"}
        other = await result_of(http_b, running, generation="not-this-one")
        assert other.status_code == 404
        assert (await result_of(http_b, run_id())).status_code == 404
        assert (await http_b.get(f"/answer/{running}/result")).status_code == 401


async def test_cancel_answers_with_a_receipt(start: Callable[..., UvicornServer]) -> None:
    a, b = start(), start()
    rid = run_id()
    async with a.client() as http_a, b.client() as http_b:
        seen = await read_events(
            http_a,
            "POST",
            f"/answer/{rid}",
            json={"count": 1_000_000, "delay_ms": 5},
            headers=AUTH,
            limit=5,
        )
        receipt = (await http_b.post(f"/answer/{rid}/cancel", headers=AUTH)).json()
        result = (await result_of(http_b, rid)).json()
        finished = (await http_a.get(f"/debug/runs/{rid}")).json()
    assert receipt["cancelled"] is True and receipt["stopped"] is True
    assert receipt["status"] == result["status"] == "cancelled"
    assert receipt["result_url"] == f"/answer/{rid}/result"
    assert receipt["text_length"] == len(result["text"]) >= len(words(5))
    assert result["text"].startswith("".join(e.json() for e in seen))
    generation = seen[0].id.rpartition(":")[0]
    assert receipt["last_content_event_id"] == f"{generation}:{receipt['last_seq'] - 1}"
    assert receipt["usage"] == result["metadata"]["usage"]
    assert result["end"] == {"reason": "cancelled"}
    assert finished == {"finally": 1}


async def test_the_finish_hook_runs_exactly_once(
    start: Callable[..., UvicornServer], hook_log: Path
) -> None:
    a, b = start(), start()
    rid = run_id()
    async with a.client() as http_a, b.client() as http_b:
        events = await read_events(
            http_a, "POST", f"/answer/{rid}", json={"count": 5}, headers=AUTH
        )

        async def hook_done() -> bool:
            state = (await http_b.get(f"/debug/hook/{rid}")).json()
            return bool(state["hook"] == "done")

        await eventually(hook_done)
    generation = events[0].id.rpartition(":")[0]
    assert hook_lines(hook_log) == [
        {
            "pid": a.pid,
            "key": f"answer:{rid}",
            "generation": generation,
            "status": "done",
            "event": "ran",
            "text": words(5),
        }
    ]


async def test_a_hook_its_instance_died_before_runs_on_another(
    start: Callable[..., UvicornServer], hook_log: Path
) -> None:
    a, b = start(TEST_HOOK_BLOCK="1"), start()
    rid = run_id()
    async with a.client() as http_a:
        events = await read_events(
            http_a, "POST", f"/answer/{rid}", json={"count": 7}, headers=AUTH
        )
    generation = events[0].id.rpartition(":")[0]
    assert events[-1].event == "done"

    async def started() -> bool:
        return any(line["event"] == "started" for line in hook_lines(hook_log))

    await eventually(started)
    a.kill()

    async def ran() -> bool:
        return any(line["event"] == "ran" for line in hook_lines(hook_log))

    await eventually(ran, timeout_s=30)
    lines = hook_lines(hook_log)
    assert [(line["pid"], line["event"], line["generation"]) for line in lines] == [
        (a.pid, "started", generation),
        (b.pid, "ran", generation),
    ]
    assert (lines[-1]["status"], lines[-1]["text"]) == ("done", words(7))
    async with b.client() as http_b:
        state = (await http_b.get(f"/debug/hook/{rid}")).json()
    assert state == {"hook": "done"}


async def test_a_generation_no_instance_reads_is_abandoned(
    start: Callable[..., UvicornServer],
) -> None:
    a, b = start(TEST_ABANDON_S="2"), start(TEST_ABANDON_S="2")
    lonely, watched = run_id(), run_id()
    body = {"count": 300, "delay_ms": 20}
    async with a.client() as http_a, b.client() as http_b:
        await read_events(http_a, "POST", f"/answer/{lonely}", json=body, headers=AUTH, limit=2)

        async def abandoned() -> bool:
            return bool((await result_of(http_b, lonely)).json()["status"] == "cancelled")

        await eventually(abandoned, timeout_s=20)
        result = (await result_of(http_b, lonely)).json()
        assert result["end"] == {"reason": "abandoned"}
        assert (await http_a.get(f"/debug/runs/{lonely}")).json() == {"finally": 1}
        first = await read_events(
            http_a, "POST", f"/answer/{watched}", json=body, headers=AUTH, limit=2
        )
        rest = await read_events(
            http_b,
            "GET",
            f"/answer/{watched}/stream",
            headers={**AUTH, "Last-Event-ID": first[-1].id},
            timeout_s=30,
        )
    assert rest[-1].event == "done"
    assert "".join(e.json() for e in first + rest[:-1]) == words(300)


async def test_the_delete_route_stops_and_forgets_a_stream(
    start: Callable[..., UvicornServer],
) -> None:
    a, b = start(), start()
    rid = run_id()
    async with a.client() as http_a, b.client() as http_b:
        await read_events(
            http_a,
            "POST",
            f"/answer/{rid}",
            json={"count": 1_000_000, "delay_ms": 5},
            headers=AUTH,
            limit=2,
        )
        assert (await http_b.delete(f"/answer/{rid}")).status_code == 401
        deleted = await http_b.delete(f"/answer/{rid}", headers=AUTH)
        assert deleted.status_code == 204

        async def stopped() -> bool:
            return bool((await http_a.get(f"/debug/runs/{rid}")).json() == {"finally": 1})

        await eventually(stopped)
        assert (await http_b.get(f"/answer/{rid}/status", headers=AUTH)).status_code == 404
        assert (await http_b.delete(f"/answer/{rid}", headers=AUTH)).status_code == 404
        schema = (await http_a.get("/openapi.json")).json()
    paths = schema["paths"]
    assert paths["/answer/{run_id}/result"]["get"]["summary"] == "Stream result"
    assert paths["/answer/{run_id}"]["delete"]["summary"] == "Delete the stream"
    result_params = {p["name"] for p in paths["/answer/{run_id}/result"]["get"]["parameters"]}
    assert result_params == {"run_id", "generation", "authorization"}
