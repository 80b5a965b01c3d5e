"""The servers of `benchmarks/workers.py`: the same token source produced in the web
process (`@resumable_stream`) or by a Taskiq worker (`@dispatched_stream`).

One module is the web app (`uvicorn benchmarks.worker_app:app`) and the worker
(`taskiq worker benchmarks.worker_app:broker`). Environment: `BENCH_REDIS_URL`,
`BENCH_TOKENS` (per stream), `BENCH_PACE_MS` (between tokens).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from taskiq_redis import RedisStreamBroker

from fastapi_streamhub import StreamHub, dispatched_stream, resumable_stream
from fastapi_streamhub.taskiq import stream_task

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
TOKENS = int(os.environ.get("BENCH_TOKENS", "100"))
PACE_S = float(os.environ.get("BENCH_PACE_MS", "0")) / 1000

broker = RedisStreamBroker(REDIS_URL, queue_name="bench-jobs", xread_block=1000)
hub = StreamHub.from_url(REDIS_URL)


async def tokens(count: int) -> AsyncIterator[str]:
    for i in range(count):
        if i and PACE_S:
            await anyio.sleep(PACE_S)
        yield " tok"


@stream_task(broker, hub)
async def produce(count: int) -> AsyncIterator[str]:
    async for token in tokens(count):
        yield token


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    async with broker, hub.lifespan(app) as state:
        yield state


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/local/{chat_id}")
@resumable_stream("local:{chat_id}")
async def local(chat_id: str) -> AsyncIterator[str]:
    async for token in tokens(TOKENS):
        yield token


@app.post("/queued/{chat_id}")
@dispatched_stream("queued:{chat_id}", dispatch=produce.dispatch)
async def queued(chat_id: str) -> dict[str, Any]:
    return {"count": TOKENS}
