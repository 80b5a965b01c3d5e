"""An app for end-to-end tests of what a generation leaves when it ends.

`POST /answer/{run_id}` streams `count` tokens (`delay_ms` apart), sets usage metadata,
and ends with `done`, or with an `error` when `fail` is set. Its finish hook appends
one JSON line per call to the file `TEST_HOOK_LOG` (this process's pid, the key,
generation, status and text); with `TEST_HOOK_BLOCK=1` it first writes a `started`
line and then never returns, so a test can kill the instance between the terminal
event and the hook. The route mounts `DELETE` and counts readers for abandonment
(`TEST_ABANDON_S`); `GET /debug/runs/{run_id}` tells whether its generator's
`finally` ran here and `GET /debug/hook/{run_id}` the state of its hook in storage.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from fastapi_streamhub import StreamError, StreamHub, StreamResult, current_producer, get_hub
from fastapi_streamhub import resumable_stream as resumable


class Spec(BaseModel):
    count: int
    delay_ms: float = 0
    fail: bool = False


def require_token(authorization: str | None = Header(None)) -> None:
    if authorization != "Bearer alice":
        raise HTTPException(401, "missing credentials")


def _log(line: dict[str, Any]) -> None:
    with open(os.environ["TEST_HOOK_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"pid": os.getpid(), **line}) + "\n")


async def record(result: StreamResult) -> None:
    line = {"key": result.key, "generation": result.generation, "status": result.status}
    if os.environ.get("TEST_HOOK_BLOCK") == "1":
        _log({**line, "event": "started"})
        await anyio.sleep_forever()
    _log({**line, "event": "ran", "text": result.text})


def create_app() -> FastAPI:
    url = os.environ.get("TEST_REDIS_URL")
    options: dict[str, Any] = {
        "lease_ttl_s": float(os.environ.get("TEST_LEASE_S", "1")),
        "shutdown_grace_s": 1.0,
        "keepalive_s": 1.0,
    }
    hub = StreamHub.from_url(url, **options) if url else StreamHub(**options)
    app = FastAPI(lifespan=hub.lifespan)
    finished: dict[str, int] = {}
    abandon = os.environ.get("TEST_ABANDON_S")

    @app.post("/answer/{run_id}", dependencies=[Depends(require_token)])
    @resumable(
        "answer:{run_id}",
        on_finish=record,
        abandon_after_s=float(abandon) if abandon else None,
        delete_route=True,
    )
    async def answer(run_id: str, spec: Spec) -> AsyncIterator[str]:
        try:
            for i in range(spec.count):
                if spec.delay_ms:
                    await anyio.sleep(spec.delay_ms / 1000)
                yield f"w{i} "
                await current_producer().set_metadata({"usage": {"tokens": i + 1}})
            if spec.fail:
                raise StreamError("The model gave up.")
        finally:
            finished[run_id] = finished.get(run_id, 0) + 1

    @app.get("/debug/runs/{run_id}")
    async def run_record(run_id: str) -> dict[str, int]:
        return {"finally": finished.get(run_id, 0)}

    @app.get("/debug/hook/{run_id}")
    async def hook_state(
        run_id: str, hub: Annotated[StreamHub, Depends(get_hub)]
    ) -> dict[str, str | None]:
        details = await hub.backend.details(f"answer:{run_id}")
        return {"hook": None if details is None else details.hook}

    return app
