"""An app for end-to-end tests: a generator whose life the tests can observe.

`TEST_REDIS_URL` selects the Redis backend (the memory backend otherwise) and
`TEST_SEND_TIMEOUT_S` the hub's `send_timeout_s`. A run's `pad` makes each token that
many characters longer, to fill socket buffers. `GET /debug/runs/{run_id}` reports
how often this instance started the generator, how many tokens it yielded and whether
its `finally` ran.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, get_hub, resumable_stream


class Spec(BaseModel):
    count: int
    delay_ms: float = 0
    pad: int = 0


def token(i: int, pad: int = 0) -> str:
    return f"tok{i} " + "." * pad


def require_token(authorization: str | None = Header(None)) -> str:
    if authorization is None:
        raise HTTPException(401, "missing credentials")
    user = authorization.removeprefix("Bearer ")
    if user not in ("alice", "bob"):
        raise HTTPException(403, "unknown user")
    return user


def only_alice_cancels(request: Request, key: str, action: str) -> bool:
    return action != "cancel" or request.headers.get("authorization") == "Bearer alice"


def create_app() -> FastAPI:
    url = os.environ.get("TEST_REDIS_URL")
    options: dict[str, Any] = {
        "lease_ttl_s": float(os.environ.get("TEST_LEASE_S", "2")),
        "shutdown_grace_s": float(os.environ.get("TEST_GRACE_S", "1")),
        "keepalive_s": 1.0,
        "send_timeout_s": float(os.environ.get("TEST_SEND_TIMEOUT_S", "30")),
    }
    hub = StreamHub.from_url(url, **options) if url else StreamHub(**options)
    app = FastAPI(lifespan=hub.lifespan)
    runs: dict[str, dict[str, int]] = {}

    @app.post("/gen/{run_id}")
    @resumable_stream("gen:{run_id}")
    async def generate(
        run_id: str, spec: Spec, hub: Annotated[StreamHub, Depends(get_hub)]
    ) -> AsyncIterator[str]:
        record = runs.setdefault(run_id, {"starts": 0, "yielded": 0, "finally": 0})
        record["starts"] += 1
        try:
            for i in range(spec.count):
                if spec.delay_ms:
                    await anyio.sleep(spec.delay_ms / 1000)
                record["yielded"] += 1
                yield token(i, spec.pad)
        finally:
            record["finally"] += 1

    @app.post("/exclusive/{run_id}")
    @resumable_stream("exclusive:{run_id}", on_conflict="reject")
    async def exclusive(run_id: str, spec: Spec) -> AsyncIterator[str]:
        for i in range(spec.count):
            await anyio.sleep(spec.delay_ms / 1000)
            yield token(i)

    @app.post("/private/{run_id}", dependencies=[Depends(require_token)])
    @resumable_stream("private:{run_id}", authorize=only_alice_cancels)
    async def private(run_id: str, spec: Spec) -> AsyncIterator[str]:
        for i in range(spec.count):
            await anyio.sleep(spec.delay_ms / 1000)
            yield token(i)

    @app.get("/debug/runs/{run_id}")
    async def run_record(run_id: str) -> dict[str, int]:
        return runs.get(run_id, {"starts": 0, "yielded": 0, "finally": 0})

    return app
