"""A web app whose streams a Taskiq worker produces, for end-to-end tests.

The same module is the web app (`uvicorn tests.apps.worker_app:app`) and the worker
(`taskiq worker tests.apps.worker_app:broker`). `TEST_REDIS_URL` is the Redis of both
the streams and the queue; `TEST_LEASE_S`, `TEST_START_TIMEOUT_S` and
`TEST_REDELIVER_MS` (how long a job may stay unacknowledged before another worker
takes it) set the rest. What the worker does is recorded in Redis, where the tests
read it: `worker:<run id>` lists `start <generation>` and `finally <generation>` per
run of the generator, and `outcomes:<run id>` what each delivery of its job came to.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from pydantic import BaseModel
from redis.asyncio import Redis
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq_redis import RedisStreamBroker

from fastapi_streamhub import StreamHub, StreamJob, current_producer, dispatched_stream
from fastapi_streamhub.taskiq import stream_task

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
store = Redis.from_url(REDIS_URL, decode_responses=True)


class RecordOutcomes(TaskiqMiddleware):
    """Records what each delivery of a job came to: a stream's end, or a refusal."""

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        job = StreamJob.from_dict(message.args[0] if message.args else message.kwargs["job"])
        outcome = f"error {result.error!r}" if result.is_err else str(result.return_value)
        await store.rpush(f"outcomes:{job.params['run_id']}", outcome)


broker = RedisStreamBroker(
    REDIS_URL,
    queue_name="streamhub-test-jobs",
    xread_block=200,
    unacknowledged_lock_timeout=1.0,
    idle_timeout=int(os.environ.get("TEST_REDELIVER_MS", "600000")),
).with_middlewares(RecordOutcomes())
hub = StreamHub.from_url(
    REDIS_URL,
    lease_ttl_s=float(os.environ.get("TEST_LEASE_S", "1")),
    start_timeout_s=float(os.environ.get("TEST_START_TIMEOUT_S", "20")),
    shutdown_grace_s=1.0,
    keepalive_s=1.0,
)


@stream_task(broker, hub)
async def generate(run_id: str, count: int, delay_ms: float) -> AsyncIterator[str]:
    """Yields `count` tokens; records its start and its `finally` in Redis."""
    generation = current_producer().generation
    await store.rpush(f"worker:{run_id}", f"start {generation}")
    try:
        for i in range(count):
            await anyio.sleep(delay_ms / 1000)
            yield f"tok{i} "
        await current_producer().set_metadata({"tokens": count})
    finally:
        with anyio.CancelScope(shield=True):
            await store.rpush(f"worker:{run_id}", f"finally {generation}")


class Spec(BaseModel):
    count: int
    delay_ms: float = 0


sent: dict[str, StreamJob] = {}


async def send(job: StreamJob) -> None:
    sent[job.key] = job
    await generate.dispatch(job)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    async with broker, hub.lifespan(app) as state:
        yield state


app = FastAPI(lifespan=lifespan)


@app.post("/gen/{run_id}")
@dispatched_stream("gen:{run_id}", dispatch=send)
async def start(run_id: str, spec: Spec) -> dict[str, Any]:
    return {"run_id": run_id, "count": spec.count, "delay_ms": spec.delay_ms}


@app.post("/debug/redeliver/{run_id}")
async def redeliver(run_id: str) -> dict[str, str]:
    """Puts the job of this instance's last start of `run_id` on the queue again."""
    job = sent[f"gen:{run_id}"]
    await generate.dispatch(job)
    return {"generation": job.generation}
