"""An app for the fan-in tests across processes: a planner with a local tool-caller, and
a route that joins another instance's generation as one more source.

`TEST_REDIS_URL` selects the Redis backend; `TEST_LEASE_S` the lease (of producers and
of joined sources). `POST /fan/{run_id}` starts a generation: the planner writes
`plan<i>` tokens (at least `count`, and on while the source named `wait_for` has not
ended), then `after` tokens `after<j>`, and spawns `search`, which writes `count` tokens.
`POST /join/{run_id}` joins that generation from this instance as source `source`, and
writes `count` tokens in a task of this instance (answered once joined).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from anyio.abc import TaskGroup
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, current_producer, get_hub, resumable_stream

MAX_PLAN_TOKENS = 3000


class Fan(BaseModel):
    count: int
    delay_ms: float = 10
    wait_for: str | None = None
    after: int = 0


class Join(BaseModel):
    source: str
    count: int
    delay_ms: float = 10


async def paced(prefix: str, count: int, delay_ms: float) -> AsyncIterator[str]:
    for i in range(count):
        yield f"{prefix}{i} "
        await anyio.sleep(delay_ms / 1000)


def create_app() -> FastAPI:
    lease_s = float(os.environ.get("TEST_LEASE_S", "2"))
    hub = StreamHub.from_url(os.environ["TEST_REDIS_URL"], lease_ttl_s=lease_s, keepalive_s=1.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with hub.lifespan(app) as state, anyio.create_task_group() as group:
            app.state.tasks = group
            yield state
            group.cancel_scope.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.post("/fan/{run_id}")
    @resumable_stream("fan:{run_id}")
    async def fan(run_id: str, spec: Fan) -> AsyncIterator[str]:
        producer = current_producer()
        producer.spawn("search", paced("search", spec.count, spec.delay_ms))
        i = 0
        while i < spec.count or (
            spec.wait_for is not None
            and spec.wait_for not in producer.ended_sources
            and i < MAX_PLAN_TOKENS
        ):
            yield f"plan{i} "
            i += 1
            await anyio.sleep(spec.delay_ms / 1000)
        for j in range(spec.after):
            yield f"after{j} "
            await anyio.sleep(spec.delay_ms / 1000)

    @app.post("/join/{run_id}", status_code=202)
    async def join(
        run_id: str, spec: Join, request: Request, hub: Annotated[StreamHub, Depends(get_hub)]
    ) -> dict[str, str]:
        joined = await hub.join(f"fan:{run_id}", source=spec.source).open()
        tasks: TaskGroup = request.app.state.tasks

        async def write() -> None:
            try:
                await joined.run(paced(spec.source, spec.count, spec.delay_ms))
            finally:
                await joined.aclose()

        tasks.start_soon(write)
        return {"generation": joined.generation}

    return app
