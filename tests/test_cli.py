"""The `streamhub` command, run for real (a child process) against a real redis-server and
a running app (uvicorn): exact `--json` output, human tables, `tail --follow` across new
generations, a frozen Redis and a killed instance, and the exit code of every error."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import pytest

from fastapi_streamhub import StreamHub
from tests.support.cli import CONSOLE_SCRIPT, CliRun, FollowingCli, run_cli
from tests.support.polling import eventually
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer
from tests.support.sentinel_server import SentinelServer
from tests.support.sse import read_events
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

APP = "tests.apps.cli_app:create_app"
VOLATILE = ("started_at", "ended_at", "age_s", "bytes")
"""Fields that depend on the clock, or on how Redis lays out what it stores."""


@pytest.fixture
def start_app(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str
) -> Callable[..., UvicornServer]:
    def start(**env: str) -> UvicornServer:
        return make_uvicorn_server(
            APP, factory=True, env={"TEST_REDIS_URL": redis_url, "TEST_LEASE_S": "1", **env}
        )

    return start


@pytest.fixture
def app(start_app: Callable[..., UvicornServer]) -> UvicornServer:
    return start_app()


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {"STREAMHUB_REDIS_URL": redis_url}


async def finished(app: UvicornServer, run: str, count: int) -> str:
    """Run a stream to its end; its generation."""
    async with app.client() as http:
        events = await read_events(http, "POST", f"/gen/{run}", json={"count": count})
    assert [e.event for e in events] == ["message"] * count + ["done"]
    return events[0].id.split(":")[0]


async def started(app: UvicornServer, run: str, *, count: int = 10_000, delay_ms: int = 20) -> str:
    """Start a stream and leave it running (the client goes; the generation goes on)."""
    async with app.client() as http:
        events = await read_events(
            http, "POST", f"/gen/{run}", json={"count": count, "delay_ms": delay_ms}, limit=1
        )
    return events[0].id.split(":")[0]


def tokens(generation: str, count: int, *, first_seq: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": f"{generation}:{first_seq + i}", "event": None, "data": f"tok{i} "}
        for i in range(count)
    ]


def done(generation: str, seq: int) -> dict[str, Any]:
    return {"id": f"{generation}:{seq}", "event": "done", "data": {}}


def without_times(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("started_at", "ended_at"):
        if row[name] is not None:
            assert datetime.fromisoformat(row[name]).tzinfo is not None
    assert row["age_s"] >= 0
    assert "bytes" not in row or row["bytes"] > 0
    return {name: value for name, value in row.items() if name not in VOLATILE}


def failed(run: CliRun, code: int, message: str) -> None:
    assert run.code == code, run
    assert run.stdout == ""
    assert run.stderr.startswith("streamhub: error: ") or "Error:" in run.stderr, run.stderr
    assert message in run.stderr, run.stderr


async def test_ls_status_tail_and_result_of_a_finished_stream_as_json(
    app: UvicornServer, env: dict[str, str]
) -> None:
    generation = await finished(app, "a", 3)
    listed = await run_cli("ls", "--json", env=env)
    assert listed.code == 0, listed
    row = {
        "key": "gen:a",
        "generation": generation,
        "status": "done",
        "sources": 1,
        "events": 4,
        "last_event_id": f"{generation}:4",
        "owner": None,
        "compacted": False,
        "finish_hook": "none",
        "metadata": {},
    }
    (only,) = listed.json()
    assert without_times(only) == row
    status = (await run_cli("status", "gen:a", "--json", env=env)).json()
    assert without_times(status) == {
        **row,
        "end": {},
        "source_states": [{"name": "main", "state": "ended", "end": "done", "reason": None}],
    }
    assert status["started_at"] <= status["ended_at"]

    tail = await run_cli("tail", "gen:a", "--json", env=env)
    assert (tail.code, tail.stderr) == (0, "")
    assert tail.lines() == [*tokens(generation, 3), done(generation, 4)]
    after = await run_cli("tail", "gen:a", "--json", "--from", f"{generation}:2", env=env)
    assert after.lines() == [*tokens(generation, 3)[2:], done(generation, 4)]

    result = (await run_cli("result", "gen:a", "--json", env=env)).json()
    assert without_times({**result, "age_s": 0}) == {
        "key": "gen:a",
        "generation": generation,
        "status": "done",
        "text": "tok0 tok1 tok2 ",
        "events": [],
        "metadata": {},
        "end": {},
        "last_event_id": f"{generation}:4",
    }
    text = await run_cli("result", "gen:a", "--text", env=env)
    assert text.stdout == "tok0 tok1 tok2 \n"


async def test_tail_of_a_running_stream_prints_what_is_stored_and_exits(
    app: UvicornServer, env: dict[str, str]
) -> None:
    generation = await started(app, "a", count=10_000, delay_ms=10)
    tail = await run_cli("tail", "gen:a", "--json", env=env)
    assert (tail.code, tail.stderr) == (0, "")
    lines = tail.lines()
    assert lines == tokens(generation, len(lines))  # from the start, no end yet
    assert lines
    later = (await run_cli("status", "gen:a", "--json", env=env)).json()
    assert later["events"] >= len(lines)
    async with app.client() as http:
        assert (await http.get("/health/ready")).json()["producers"] == 1


async def test_human_output_shows_the_same(app: UvicornServer, env: dict[str, str]) -> None:
    generation = await finished(app, "a", 2)
    running = await started(app, "b")
    long_run = "r" * 300
    long_generation = await finished(app, long_run, 1)
    listed = await run_cli("ls", env=env)
    assert listed.code == 0, listed
    header, first, long_row, second = listed.stdout.splitlines()  # one line per row
    assert long_row.split()[:3] == [f"gen:{long_run}", long_generation, "done"]
    assert header.split() == ["KEY", "GENERATION", "STATUS", "SOURCES", "EVENTS", "AGE", "OWNER"]
    assert first.split()[:4] == ["gen:b", running, "running", "1"]
    assert re.fullmatch(r"[0-9a-f]{16}", first.split()[-1])
    assert second.split()[:5] == ["gen:a", generation, "done", "1", "3"]
    assert second.split()[-1] == "-"
    status = await run_cli("status", "gen:a", env=env)
    lines = [line.split(None, 1) for line in status.stdout.splitlines()]
    assert ["status", "done"] in lines
    assert ["last", f"event id  {generation}:3"] in lines
    tail = await run_cli("tail", "gen:a", env=env)
    assert tail.stdout.splitlines() == [
        f'{generation}:1  message  "tok0 "',
        f'{generation}:2  message  "tok1 "',
        f"{generation}:3  done  {{}}",
    ]
    result = await run_cli("result", "gen:a", env=env)
    assert result.stdout.endswith("\ntok0 tok1 \n")


async def test_cancel_and_stats(app: UvicornServer, env: dict[str, str]) -> None:
    await finished(app, "a", 2)
    generation = await started(app, "b")
    await started(app, "c")
    stats = (await run_cli("stats", "--json", env=env)).json()
    assert stats["by_status"] == {
        "running": 2,
        "pending": 0,
        "lapsed": 0,
        "done": 1,
        "error": 0,
        "cancelled": 0,
    }
    assert (stats["streams"], stats["compacted"], stats["finish_hooks_owed"]) == (3, 0, 0)
    assert stats["bytes"] > 0
    assert list(stats["instances"].values()) == [2]
    assert stats["oldest_running_s"] >= 0

    cancelled = await run_cli("cancel", "gen:b", "--json", env=env)
    assert cancelled.code == 0, cancelled
    outcome = cancelled.json()
    last = outcome.pop("last_event_id")
    assert outcome == {
        "key": "gen:b",
        "cancelled": True,
        "stopped": True,
        "status": "cancelled",
        "generation": generation,
    }
    status = (await run_cli("status", "gen:b", "--json", env=env)).json()
    assert (status["status"], status["end"], status["last_event_id"]) == (
        "cancelled",
        {"reason": "cancelled"},
        last,
    )
    again = await run_cli("cancel", "gen:b", env=env)
    assert (again.code, again.stdout) == (
        0,
        "'gen:b' had already ended (cancelled); nothing to cancel\n",
    )
    stats = (await run_cli("stats", "--json", env=env)).json()
    assert (stats["by_status"]["running"], stats["by_status"]["cancelled"]) == (1, 1)
    only_running = (await run_cli("ls", "--json", "--status", "running", env=env)).json()
    assert [row["key"] for row in only_running] == ["gen:c"]


async def test_rm_asks_first_then_removes(app: UvicornServer, env: dict[str, str]) -> None:
    await started(app, "a")
    declined = await run_cli("rm", "gen:a", env=env, stdin="n\n")
    assert declined.code == 1
    assert (await run_cli("status", "gen:a", env=env)).code == 0
    removed = await run_cli("rm", "gen:a", "--yes", "--json", env=env)
    assert (removed.code, removed.json()) == (0, {"key": "gen:a", "removed": True})
    failed(await run_cli("status", "gen:a", env=env), 3, "no stream under key 'gen:a'")
    failed(await run_cli("rm", "gen:a", "-y", env=env), 3, "no stream under key 'gen:a'")


async def test_errors_have_a_message_and_an_exit_code(
    app: UvicornServer, env: dict[str, str], redis_server: RedisServer
) -> None:
    await finished(app, "a", 1)
    for command in (("status",), ("tail",), ("tail", "--follow"), ("result",), ("cancel",)):
        run = await run_cli(*command, "gen:nope", env=env)
        failed(
            run, 3, f"no stream under key 'gen:nope' in {redis_server.url} (prefix 'streamhub:')"
        )
        assert "is it the app's" not in run.stderr
    failed(
        await run_cli("--prefix", "other:", "status", "gen:a", env=env),
        3,
        "no stream at all is stored under this prefix: is it the app's",
    )
    failed(await run_cli("ls"), 2, "no Redis URL: pass --url or set STREAMHUB_REDIS_URL")
    failed(await run_cli("tail", "gen:a", "--from", "nope", env=env), 2, "malformed cursor 'nope'")
    failed(await run_cli("status", "k" * 513, env=env), 2, "at most 512 characters")
    failed(await run_cli("--url", "http://x", "ls"), 2, "invalid Redis URL http://x")
    failed(await run_cli("--prefix", "a{b", "ls", env=env), 2, "may not contain")
    masked = "redis://user:****@127.0.0.1:1/0"
    failed(
        await run_cli("--url", "redis://user:secret@127.0.0.1:1/0", "ls"),
        4,
        f"cannot reach Redis at {masked}",
    )
    await anyio.to_thread.run_sync(redis_server.pause)
    try:
        frozen = await run_cli("--timeout", "0.5", "status", "gen:a", env=env)
    finally:
        await anyio.to_thread.run_sync(redis_server.resume)
    failed(frozen, 4, f"cannot reach Redis at {redis_server.url}")


async def test_the_console_script_reads_the_environment(
    start_app: Callable[..., UvicornServer], redis_url: str
) -> None:
    app = start_app(TEST_PREFIX="myapp:")
    generation = await finished(app, "a", 1)
    env = {"STREAMHUB_REDIS_URL": redis_url, "STREAMHUB_KEY_PREFIX": "myapp:"}
    run = await run_cli("status", "gen:a", "--json", env=env, command=[str(CONSOLE_SCRIPT)])
    assert (run.code, run.json()["generation"]) == (0, generation), run
    assert (await run_cli("ls", "--json", env={"STREAMHUB_REDIS_URL": redis_url})).json() == []


async def test_tail_follow_goes_on_across_new_generations_and_a_frozen_redis(
    start_app: Callable[..., UvicornServer], env: dict[str, str], redis_server: RedisServer
) -> None:
    app = start_app(TEST_LEASE_S="10")  # the outage must not outlast the producer's lease
    first = await started(app, "a", count=30, delay_ms=20)
    async with FollowingCli("tail", "gen:a", "--follow", "--json", env=env) as tail:
        assert await tail.next_json(31) == [*tokens(first, 30), done(first, 31)]
        second = await started(app, "a", count=40, delay_ms=25)
        reset = {"id": f"{second}:0", "event": "reset", "data": {"generation": second}}
        assert await tail.next_json(11) == [reset, *tokens(second, 10)]
        await anyio.to_thread.run_sync(redis_server.pause)
        await anyio.sleep(1.5)  # the outage itself: the tail waits it out
        await anyio.to_thread.run_sync(redis_server.resume)
        assert await tail.next_json(31) == [*tokens(second, 40)[10:], done(second, 41)]
        code, rest, _ = await tail.interrupt()
    assert (code, rest) == (130, "")


async def test_tail_follow_sees_a_lost_instance_and_the_next_one_start_again(
    start_app: Callable[..., UvicornServer], env: dict[str, str]
) -> None:
    doomed = start_app()
    first = await started(doomed, "a", count=10_000, delay_ms=20)
    async with FollowingCli("tail", "gen:a", "--follow", "--json", env=env) as tail:
        seen = await tail.next_json(5)
        assert seen == tokens(first, 5)
        doomed.kill()
        while True:  # what it stored before it died, then the end its lapse gets
            (event,) = await tail.next_json(1)
            if event["event"] is not None:
                break
            seen.append(event)
        assert seen == tokens(first, len(seen))
        assert event == {
            "id": f"{first}:{len(seen) + 1}",
            "event": "error",
            "data": {"message": "The stream's producer was lost.", "reason": "producer_lost"},
        }
        second = await finished(start_app(), "a", 2)
        assert await tail.next_json(4) == [
            {"id": f"{second}:0", "event": "reset", "data": {"generation": second}},
            *tokens(second, 2),
            done(second, 3),
        ]
        code, rest, _ = await tail.interrupt()
    assert (code, rest) == (130, "")


async def produce(url: str, keys: list[str]) -> None:
    """One finished stream per key, `hi` then `done`, written by a hub in this process."""
    async with StreamHub.from_url(url, shutdown_grace_s=0.1) as hub:
        for key in keys:
            producer, _ = await hub.register(key)
            await producer.publish("hi")
            await producer.close()


async def test_ls_tail_rm_and_stats_on_a_cluster(shared_redis_cluster: LocalCluster) -> None:
    keys = [key for per in shared_redis_cluster.keys_on_each_primary().values() for key in per]
    await produce(shared_redis_cluster.url, keys)
    env = {"STREAMHUB_REDIS_URL": shared_redis_cluster.url}
    listed = (await run_cli("ls", "--json", env=env)).json()
    assert sorted(row["key"] for row in listed) == sorted(keys)
    assert {row["status"] for row in listed} == {"done"}
    tail = await run_cli("tail", keys[0], "--json", env=env)
    assert [line["data"] for line in tail.lines()] == ["hi", {}]
    assert (await run_cli("rm", "-y", keys[1], env=env)).code == 0
    assert (await run_cli("stats", "--json", env=env)).json()["streams"] == len(keys) - 1


async def test_status_through_a_sentinel(make_redis_server: Callable[..., RedisServer]) -> None:
    with SentinelServer(make_redis_server()) as sentinel:
        await produce(sentinel.url, ["chat:s"])
        env = {"STREAMHUB_REDIS_URL": sentinel.url}
        status = (await run_cli("status", "chat:s", "--json", env=env)).json()
        assert (status["status"], status["events"], status["end"]) == ("done", 2, {})
        assert [row["key"] for row in (await run_cli("ls", "--json", env=env)).json()] == ["chat:s"]


async def test_python_dash_m_and_the_console_script_are_the_same_command() -> None:
    module = await run_cli("--help")
    script = await run_cli("--help", command=[str(CONSOLE_SCRIPT)])
    assert module.code == script.code == 0
    assert module.stdout == script.stdout
    assert "Usage: streamhub" in module.stdout


async def test_without_the_cli_extra_the_module_says_what_to_install() -> None:
    blocked = (
        "import runpy, sys; sys.modules['click'] = None; "
        "runpy.run_module('fastapi_streamhub', run_name='__main__')"
    )
    run = await run_cli("ls", command=[sys.executable, "-c", blocked])
    assert run.code == 1
    assert run.stderr.startswith(
        "streamhub: the command line needs the cli extra: pip install 'fastapi-streamhub[cli]'"
    )


def ended(end: str | None, reason: str | None = None) -> dict[str, Any]:
    return {"state": "running" if end is None else "ended", "end": end, "reason": reason}


async def source_states(env: dict[str, str], key: str) -> dict[str, dict[str, Any]]:
    status = await run_cli("status", key, "--json", env=env)
    assert status.code == 0, status
    return {s.pop("name"): s for s in status.json()["source_states"]}


async def test_status_lists_sources_and_steer_reaches_the_generator(
    app: UvicornServer, env: dict[str, str], redis_url: str
) -> None:
    """A generation that fans in, seen from the command line as it goes: its sources and
    their states read from storage, steering messages sent to it, each error's code."""
    spec = {"tools": ["search"], "failing": ["calc"], "expect": ["worker"]}
    async with app.client() as http:
        (first,) = await read_events(http, "POST", "/fan/a", json=spec, limit=1)
    generation = first.id.split(":")[0]

    async def tools_ended() -> bool:
        states = await source_states(env, "fan:a")
        return states["search"]["state"] == states["calc"]["state"] == "ended"

    await eventually(tools_ended, timeout_s=30)
    assert await source_states(env, "fan:a") == {  # the expected worker has written nothing
        "main": ended(None),
        "search": ended("done"),
        "calc": ended("error", "failed"),
    }

    sent = await run_cli("steer", "fan:a", '{"go": "left"}', "--json", env=env)
    assert (sent.code, sent.stderr) == (0, ""), sent
    steered = sent.json()
    assert steered == {"key": "fan:a", "id": steered["id"], "generation": generation}
    said = await run_cli("steer", "fan:a", '"hello"', "--source", "ops", env=env)
    assert said.code == 0, said
    assert said.stdout.startswith(f"steered 'fan:a' (generation {generation}): message ")
    failed(await run_cli("steer", "fan:a", "hello", env=env), 2, "not JSON")
    failed(await run_cli("steer", "fan:nobody", '"x"', env=env), 3, "no stream under key")
    failed(await run_cli("steer", "fan:a", json.dumps("x" * 20_000), env=env), 2, "at most")

    async with (
        StreamHub.from_url(redis_url, shutdown_grace_s=0.1) as hub,
        hub.join("fan:a", source="worker") as worker,
    ):
        await worker.publish("w1")

    async def worker_ended() -> bool:
        return (await source_states(env, "fan:a"))["worker"]["state"] == "ended"

    await eventually(worker_ended, timeout_s=30)
    human = await run_cli("status", "fan:a", env=env)
    lines = [line.split(None, 1) for line in human.stdout.splitlines()]
    sources_at = lines.index(["sources", "4"])
    assert lines[sources_at + 1 : sources_at + 5] == [
        ["main", "running"],
        ["search", "ended (done)"],
        ["calc", "ended (error: failed)"],
        ["worker", "ended (done)"],
    ]
    assert (await run_cli("steer", "fan:a", '"stop"', env=env)).code == 0

    async def generation_ended() -> bool:
        return (await run_cli("status", "fan:a", "--json", env=env)).json()["status"] == "done"

    await eventually(generation_ended, timeout_s=30)
    assert await source_states(env, "fan:a") == {
        "main": ended("done"),
        "search": ended("done"),
        "calc": ended("error", "failed"),
        "worker": ended("done"),
    }
    (row,) = (await run_cli("ls", "--json", env=env)).json()
    assert (row["key"], row["sources"]) == ("fan:a", 4)
    listed = (await run_cli("ls", env=env)).stdout.splitlines()
    assert listed[1].split()[:4] == ["fan:a", generation, "done", "4"]
    failed(await run_cli("steer", "fan:a", '"late"', env=env), 5, "no generation of stream")

    tail = await run_cli("tail", "fan:a", "--json", env=env)
    heard = [line["data"] for line in tail.lines() if line["event"] is None]
    assert heard == [
        "planning",
        {"heard": {"go": "left"}, "from": "cli"},
        {"heard": "hello", "from": "ops"},
        {"heard": "stop", "from": "cli"},
    ]
    steers = [line["data"] for line in tail.lines() if line["event"] == "steer"]
    assert [(s["id"], s["source"]) for s in steers] == [
        (steered["id"], "cli"),
        (steers[1]["id"], "ops"),
        (steers[2]["id"], "cli"),
    ]


async def test_sources_and_steer_on_a_cluster(shared_redis_cluster: LocalCluster) -> None:
    env = {"STREAMHUB_REDIS_URL": shared_redis_cluster.url}
    async with StreamHub.from_url(shared_redis_cluster.url, shutdown_grace_s=0.1) as hub:
        producer, _ = await hub.register("fan:c")
        async with producer.source("search") as search:
            await search.publish("found")
        sent = await run_cli("steer", "fan:c", '{"go": 1}', env=env)
        assert sent.code == 0, sent
        message = await anext(producer.messages())
        assert (message.data, message.source) == ({"go": 1}, "cli")
        running = await source_states(env, "fan:c")
        await producer.close()
    assert running == {"main": ended(None), "search": ended("done")}
    assert await source_states(env, "fan:c") == {"main": ended("done"), "search": ended("done")}
    listed = (await run_cli("ls", "--json", env=env)).json()
    assert [row["sources"] for row in listed if row["key"] == "fan:c"] == [2]
