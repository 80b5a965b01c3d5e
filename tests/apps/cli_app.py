"""An app for the command line's tests: streams whose pace the test sets, on the Redis and
key prefix of `TEST_REDIS_URL` and `TEST_PREFIX`, with the health routes mounted.

`POST /gen/{run_id}` streams `count` tokens `tok<i> `, one every `delay_ms`, ending
with `done`; `/gen/{run_id}/status` and the other stream routes come with it.

`POST /fan/{run_id}` fans in: it spawns each of `tools` (one result, then `done`) and of
`failing` (raises), expects `expect` to be joined by another process, yields
`planning`, then echoes each steering message (`{"heard": ...}`) until one is `"stop"`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, current_producer, health_router, resumable_stream


class Spec(BaseModel):
    count: int
    delay_ms: float = 0


class FanSpec(BaseModel):
    tools: list[str] = []
    failing: list[str] = []
    expect: list[str] = []


async def tool(name: str) -> AsyncIterator[str]:
    yield f"{name} result"


async def broken() -> AsyncIterator[str]:
    yield "partial"
    raise RuntimeError("the tool broke")


def create_app() -> FastAPI:
    hub = StreamHub.from_url(
        os.environ["TEST_REDIS_URL"],
        prefix=os.environ.get("TEST_PREFIX", "streamhub:"),
        lease_ttl_s=float(os.environ.get("TEST_LEASE_S", "2")),
        shutdown_grace_s=0.5,
        compact=False,
    )
    app = FastAPI(lifespan=hub.lifespan)
    app.include_router(health_router(hub))

    @app.post("/gen/{run_id}")
    @resumable_stream("gen:{run_id}")
    async def generate(run_id: str, spec: Spec) -> AsyncIterator[str]:
        for i in range(spec.count):
            if spec.delay_ms:
                await anyio.sleep(spec.delay_ms / 1000)
            yield f"tok{i} "

    @app.post("/fan/{run_id}")
    @resumable_stream("fan:{run_id}")
    async def fan(run_id: str, spec: FanSpec) -> AsyncIterator[Any]:
        producer = current_producer()
        for name in spec.tools:
            producer.spawn(name, tool(name))
        for name in spec.failing:
            producer.spawn(name, broken())
        for name in spec.expect:
            producer.expect(name, within_s=60)
        yield "planning"
        async for message in producer.messages():
            yield {"heard": message.data, "from": message.source}
            if message.data == "stop":
                return

    return app
