"""Soak: hundreds of concurrent streams on two uvicorn instances sharing one Redis.

Every stream is driven by a plan drawn from a fixed seed (printed; set `SOAK_SEED`
to replay another): a client starts it on one instance, reads some events and drops
the connection; it resumes from random cursors it has seen, on either instance;
some streams are cancelled from the instance that does not produce them; some are
started again while they run (the start must attach). At the end, what each client
pieced together must be the producer's output, exactly: all of it for a finished
stream, a prefix for a cancelled one, seq 1, 2, 3... with no duplicate and no gap,
and every generator started once in all.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx
import pytest

from tests.apps.hostile_app import soak_token
from tests.support.redis_server import RedisServer
from tests.support.sse import SSE, read_stream
from tests.support.uvicorn_server import UvicornServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SEED = int(os.environ.get("SOAK_SEED", "20240611"))
STREAMS = 300
# How many stream clients run at once (all of them by default).
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", str(STREAMS)))
APP = "tests.apps.hostile_app:create_app"
READ_TIMEOUT_S = 60.0
SOAK_TIMEOUT_S = 110.0

Kind = Literal["finish", "cancel", "hold"]


@dataclass
class Plan:
    """What the client of one stream does, drawn from the seed."""

    run_id: str
    count: int
    delay_ms: float
    kind: Kind
    starter: int
    first_read: int
    duplicates: list[tuple[int, int]]
    resumes: list[tuple[int, float, int]]
    canceller: int
    final: int

    @classmethod
    def draw(cls, index: int, rng: random.Random) -> Plan:
        count = rng.randint(20, 100)
        kind: Kind = rng.choices(["finish", "cancel", "hold"], weights=[5, 3, 2])[0]
        starter = rng.randrange(2)
        # A held stream never ends by itself, so no read may wait past its last token.
        most = count if kind == "hold" else count + 1
        return cls(
            run_id=f"s{SEED}-{index}",
            count=count,
            delay_ms=rng.uniform(2, 6),
            kind=kind,
            starter=starter,
            first_read=rng.randint(1, most),
            duplicates=[
                (rng.randrange(2), rng.randint(1, count))
                for _ in range(rng.randint(1, 2) if kind == "hold" else 0)
            ],
            resumes=[
                (rng.randrange(2), rng.random(), rng.randint(1, most))
                for _ in range(rng.randint(0, 2))
            ],
            canceller=1 - starter,
            final=rng.randrange(2),
        )


@dataclass
class Outcome:
    """What the client of one stream saw."""

    plan: Plan
    events: dict[int, SSE] = field(default_factory=dict)
    generation: str = ""
    reads: int = 0
    received: int = 0
    resumes: int = 0
    duplicates: int = 0
    cancels: int = 0
    cancelled_by_request: int = 0
    no_content: int = 0

    @property
    def last_seq(self) -> int:
        return max(self.events, default=0)

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[self.last_seq].event in ("done", "cancelled")

    def record(self, after: int, got: list[SSE]) -> None:
        """Add one read of the events after seq `after`, checking it against the others."""
        self.reads += 1
        self.received += len(got)
        seqs = [seq_of(e) for e in got]
        assert seqs == list(range(after + 1, after + 1 + len(got))), (self.plan.run_id, seqs)
        for event in got:
            generation = event.id.rpartition(":")[0]
            self.generation = self.generation or generation
            assert generation == self.generation, (self.plan.run_id, event)
            seen = self.events.setdefault(seq_of(event), event)
            assert seen == event, (self.plan.run_id, seen, event)


def seq_of(event: SSE) -> int:
    return int(event.id.rpartition(":")[2])


@pytest.fixture
def cluster() -> Iterator[tuple[UvicornServer, UvicornServer]]:
    with RedisServer() as redis:
        # Token by token: the reconstruction below checks every seq, which compaction
        # (10 s after a stream ends) merges; tests/test_backend_compaction.py and
        # tests/test_finishing.py check reads that span it.
        env = {"TEST_REDIS_URL": redis.url, "TEST_LEASE_S": "10", "TEST_COMPACT": "0"}
        with (
            UvicornServer(APP, factory=True, env=env, ready_path="/docs") as a,
            UvicornServer(APP, factory=True, env=env, ready_path="/docs") as b,
        ):
            yield a, b
            for name, server in (("a", a), ("b", b)):
                print(f"----- uvicorn {name} log (tail) -----\n{server.logs()[-4000:]}")


class Soak:
    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients

    async def read(
        self,
        outcome: Outcome,
        instance: int,
        method: str,
        url: str,
        after: int,
        limit: int,
        **kw: Any,
    ) -> list[SSE]:
        stream = await read_stream(
            self.clients[instance], method, url, limit=limit, timeout_s=READ_TIMEOUT_S, **kw
        )
        assert stream.status_code == 200, (url, stream.status_code, stream.body[:300])
        outcome.record(after, stream.events)
        return stream.events

    async def resume(self, outcome: Outcome, instance: int, after: int, limit: int | None) -> None:
        plan = outcome.plan
        outcome.resumes += 1
        headers = {"Last-Event-ID": f"{outcome.generation}:{after}"}
        url = f"/soak/{plan.run_id}/stream"
        if outcome.finished and after == outcome.last_seq:
            stream = await read_stream(
                self.clients[instance], "GET", url, headers=headers, timeout_s=READ_TIMEOUT_S
            )
            assert stream.status_code == 204, (url, after, stream.status_code)
            outcome.no_content += 1
            return
        await self.read(outcome, instance, "GET", url, after, limit or 10**6, headers=headers)

    async def run(self, plan: Plan) -> Outcome:
        outcome = Outcome(plan)
        body = {"count": plan.count, "delay_ms": plan.delay_ms, "hold": plan.kind == "hold"}
        url = f"/soak/{plan.run_id}"
        await self.read(outcome, plan.starter, "POST", url, 0, plan.first_read, json=body)
        for instance, limit in plan.duplicates:
            outcome.duplicates += 1
            await self.read(outcome, instance, "POST", url, 0, limit, json=body)
        for instance, fraction, limit in plan.resumes:
            after = int(fraction * (outcome.last_seq + 1))
            if plan.kind == "hold" and after >= plan.count:
                continue  # nothing more comes until the cancel
            available = plan.count - after if plan.kind == "hold" else plan.count + 1 - after
            await self.resume(outcome, instance, after, min(limit, available))
        if plan.kind in ("cancel", "hold"):
            await self.cancel(outcome)
        await self.resume(outcome, plan.final, outcome.last_seq, None)
        return outcome

    async def cancel(self, outcome: Outcome) -> None:
        plan = outcome.plan
        outcome.cancels += 1
        with anyio.fail_after(READ_TIMEOUT_S):
            response = await self.clients[plan.canceller].post(f"/soak/{plan.run_id}/cancel")
        assert response.status_code == 200, response.text
        body = response.json()
        if plan.kind == "hold":
            assert body["cancelled"] is True, body
        assert body["status"] == ("cancelled" if body["cancelled"] else "done"), body
        outcome.cancelled_by_request += int(body["cancelled"])


def check_reconstruction(outcome: Outcome) -> None:
    plan, events = outcome.plan, outcome.events
    seqs = sorted(events)
    assert seqs == list(range(1, len(seqs) + 1)), (plan.run_id, "gap", seqs)
    terminal = events[seqs[-1]]
    tokens = [events[seq].json() for seq in seqs[:-1]]
    assert all(events[seq].event == "message" for seq in seqs[:-1]), plan.run_id
    assert tokens == [soak_token(plan.run_id, i) for i in range(len(tokens))], plan.run_id
    if plan.kind == "finish":
        assert terminal.event == "done", (plan.run_id, terminal)
    if plan.kind == "hold":
        assert terminal.event == "cancelled", (plan.run_id, terminal)
    assert terminal.event in ("done", "cancelled"), (plan.run_id, terminal)
    if terminal.event == "done":
        assert len(tokens) == plan.count, plan.run_id
    else:
        assert len(tokens) <= plan.count, plan.run_id


async def test_soak_two_instances_one_redis(
    cluster: tuple[UvicornServer, UvicornServer],
) -> None:
    print(f"soak seed: {SEED} (SOAK_SEED={SEED} replays this run), concurrency {CONCURRENCY}")
    rng = random.Random(SEED)
    plans = [Plan.draw(index, random.Random(rng.random())) for index in range(STREAMS)]
    limits = httpx.Limits(max_connections=2 * STREAMS, max_keepalive_connections=50)
    outcomes: list[Outcome] = []
    with anyio.fail_after(SOAK_TIMEOUT_S):
        async with (
            cluster[0].client(limits=limits, timeout=READ_TIMEOUT_S) as http_a,
            cluster[1].client(limits=limits, timeout=READ_TIMEOUT_S) as http_b,
        ):
            soak = Soak([http_a, http_b])

            limiter = anyio.CapacityLimiter(CONCURRENCY)

            async def drive(plan: Plan) -> None:
                async with limiter:
                    outcomes.append(await soak.run(plan))

            async with anyio.create_task_group() as group:
                for plan in plans:
                    group.start_soon(drive, plan)
            starts = dict.fromkeys((plan.run_id for plan in plans), 0)
            for plan in plans:
                for http in (http_a, http_b):
                    record = await http.get(f"/debug/soak/{plan.run_id}")
                    starts[plan.run_id] += record.json()["starts"]
            statuses = {
                o.plan.run_id: (await http_a.get(f"/soak/{o.plan.run_id}/status")).json()
                for o in outcomes
            }
    assert len(outcomes) == STREAMS
    for outcome in outcomes:
        check_reconstruction(outcome)
        status = statuses[outcome.plan.run_id]
        assert status["last_event_id"] == outcome.events[outcome.last_seq].id
        assert status["status"] == outcome.events[outcome.last_seq].event
    assert starts == {plan.run_id: 1 for plan in plans}
    print(
        "soak:",
        f"streams={len(outcomes)}",
        f"events={sum(o.received for o in outcomes)}",
        f"reads={sum(o.reads for o in outcomes)}",
        f"resumes={sum(o.resumes for o in outcomes)}",
        f"no_content={sum(o.no_content for o in outcomes)}",
        f"cancels={sum(o.cancels for o in outcomes)}",
        f"cancelled={sum(o.cancelled_by_request for o in outcomes)}",
        f"duplicates={sum(o.duplicates for o in outcomes)}",
        f"finished={sum(o.events[o.last_seq].event == 'done' for o in outcomes)}",
    )


async def test_more_concurrent_streams_than_the_redis_pool_size_all_succeed(
    redis_server: RedisServer, make_uvicorn_server: Any
) -> None:
    """Regression: `RedisBackend.from_url` kept redis-py's default pool, which (redis-py
    6 and later) holds at most 100 connections and raises `MaxConnectionsError` instead
    of waiting: with 150 streams starting at once in one process, a third of the starts
    answered `500 Internal Server Error` although Redis was up and idle."""
    env = {"TEST_REDIS_URL": redis_server.url, "TEST_LEASE_S": "10"}
    server = make_uvicorn_server(APP, factory=True, env=env, ready_path="/docs")
    answers: dict[int, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=20)
    async with server.client(limits=limits, timeout=READ_TIMEOUT_S) as http:

        async def start(index: int) -> None:
            body = {"count": 20, "delay_ms": 2}
            stream = await read_stream(
                http, "POST", f"/soak/pool{index}", json=body, timeout_s=READ_TIMEOUT_S
            )
            done = stream.events[-1].event == "done" if stream.events else False
            answers[index] = stream.status_code if done or stream.status_code != 200 else -1

        async with anyio.create_task_group() as group:
            for index in range(150):
                group.start_soon(start, index)
    failed = {index: status for index, status in answers.items() if status != 200}
    assert not failed, f"{len(failed)} of 150 starts failed: {sorted(set(failed.values()))}"
