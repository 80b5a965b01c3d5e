"""An app for steering tests: a generator that changes its style when steered.

`TEST_REDIS_URL` selects the Redis backend (the memory backend otherwise). Each token
is `<style><n> `; a steering message (a string) becomes the style from the next
token on, and `"stop"` ends the answer. `GET /debug/runs/{run_id}` reports, for this
instance, the messages the generator received, in order, and how many tokens it
yielded. `/private/...` is guarded by a bearer token and lets only alice steer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, current_producer, resumable_stream


class Spec(BaseModel):
    count: int = 100_000
    delay_ms: float = 5


def require_token(authorization: str | None = Header(None)) -> str:
    if authorization is None:
        raise HTTPException(401, "missing credentials")
    return authorization.removeprefix("Bearer ")


def only_alice_steers(request: Request, key: str, action: str) -> bool:
    return action != "steer" or request.headers.get("authorization") == "Bearer alice"


def create_app() -> FastAPI:
    url = os.environ.get("TEST_REDIS_URL")
    options: dict[str, Any] = {
        "lease_ttl_s": float(os.environ.get("TEST_LEASE_S", "4")),
        "shutdown_grace_s": 1.0,
        "keepalive_s": 1.0,
        "max_message_bytes": 1024,
    }
    hub = StreamHub.from_url(url, **options) if url else StreamHub(**options)
    app = FastAPI(lifespan=hub.lifespan)
    runs: dict[str, dict[str, Any]] = {}

    async def steerable(run_id: str, spec: Spec) -> AsyncIterator[str]:
        record = runs.setdefault(run_id, {"steered": [], "yielded": 0})
        me = current_producer()
        style = "long"
        for i in range(spec.count):
            for message in me.take_messages():
                record["steered"].append(message.data)
                if message.data == "stop":
                    return
                style = str(message.data)
            record["yielded"] += 1
            yield f"{style}{i} "
            await anyio.sleep(spec.delay_ms / 1000)

    @app.post("/chat/{run_id}")
    @resumable_stream("chat:{run_id}")
    async def chat(run_id: str, spec: Spec) -> AsyncIterator[str]:
        async for token in steerable(run_id, spec):
            yield token

    @app.post("/private/{run_id}", dependencies=[Depends(require_token)])
    @resumable_stream("private:{run_id}", authorize=only_alice_steers)
    async def private(run_id: str, spec: Spec) -> AsyncIterator[str]:
        async for token in steerable(run_id, spec):
            yield token

    @app.get("/debug/runs/{run_id}")
    async def run_record(run_id: str) -> dict[str, Any]:
        return runs.get(run_id, {"steered": [], "yielded": 0})

    return app
