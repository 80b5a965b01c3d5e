"""An app for the bad-input, property and soak tests: keys, producers and outputs the
tests choose.

`TEST_REDIS_URL` selects the Redis backend (the memory backend otherwise);
`TEST_MAX_EVENT_BYTES` and `TEST_LEASE_S` set the hub's `max_event_bytes` and
`lease_ttl_s`; `TEST_COMPACT=0` turns compaction off.

- `POST /keys/{item_id}`: yields `{"id": item_id, "i": i}` `count` times, so a resume
  shows whose stream it read.
- `POST /bad/{run_id}`: yields "ok", then misbehaves as `mode` says (see `BAD_MODES`).
- `POST /echo/{run_id}`: yields `chunks` as given.
- `POST /api/private/{run_id}`: on an `APIRouter` whose dependency wants the header
  `X-Token: letmein` (401 otherwise); yields "secret" `count` times.
- `POST /soak/{run_id}`: yields `soak_token(run_id, i)` `count` times, `delay_ms` apart;
  with `hold`, it then waits until it is cancelled. `GET /debug/soak/{run_id}` says how
  often this instance started that generator.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from fastapi_streamhub import Event, StreamHub, resumable_stream

#: Text that must never reach a client: it is in the exception the producer raises.
SECRET = "db-password=hunter2 at /srv/app/internal.py"


class InternalWidget:
    """An object a producer yields by mistake; its repr holds the secret."""

    def __repr__(self) -> str:
        return f"InternalWidget({SECRET!r})"


class LeakyError(RuntimeError):
    pass


def _too_large(max_bytes: int) -> str:
    return "x" * (max_bytes + 1)


async def _misbehave(mode: str, max_bytes: int) -> AsyncIterator[object]:
    if mode == "raise_first":
        raise LeakyError(SECRET)
    yield "ok"
    if mode == "raise":
        raise LeakyError(SECRET)
    if mode == "reserved_event":
        yield Event("done", {"fake": True})
    yield BAD_MODES[mode](max_bytes)


#: mode -> the value yielded after "ok" (raising modes never reach theirs).
BAD_MODES: dict[str, Any] = {
    "object": lambda _: InternalWidget(),
    "bytes": lambda _: SECRET.encode(),
    "set": lambda _: {SECRET},
    "nan": lambda _: math.nan,
    "dict_with_object": lambda _: {"ok": 1, "widget": InternalWidget()},
    "event_with_object": lambda _: Event("tool", InternalWidget()),
    "surrogate": lambda _: "half a pair: \ud800",
    "too_large": _too_large,
    "too_large_dict": lambda n: {"text": _too_large(n)},
    "raise": None,
    "raise_first": None,
    "reserved_event": None,
}


def require_token(x_token: str | None = Header(None)) -> None:
    if x_token != "letmein":
        raise HTTPException(401, "missing or wrong X-Token")


def soak_token(run_id: str, i: int) -> str:
    return f"{run_id}/{i} "


class KeySpec(BaseModel):
    count: int = 3


class BadSpec(BaseModel):
    mode: str


class EchoSpec(BaseModel):
    chunks: list[Any]


class SoakSpec(BaseModel):
    count: int
    delay_ms: float
    hold: bool = False


def create_app() -> FastAPI:
    url = os.environ.get("TEST_REDIS_URL")
    max_bytes = int(os.environ.get("TEST_MAX_EVENT_BYTES", "1000"))
    options: dict[str, Any] = {
        "lease_ttl_s": float(os.environ.get("TEST_LEASE_S", "2")),
        "keepalive_s": 1.0,
        "max_event_bytes": max_bytes,
        "compact": os.environ.get("TEST_COMPACT", "1") == "1",
    }
    hub = StreamHub.from_url(url, **options) if url else StreamHub(**options)
    app = FastAPI(lifespan=hub.lifespan)
    _add_input_routes(app, max_bytes)
    _add_soak_routes(app)
    app.include_router(_private_router(), prefix="/api")
    return app


def _add_input_routes(app: FastAPI, max_bytes: int) -> None:
    @app.post("/keys/{item_id}")
    @resumable_stream("k:{item_id}")
    async def keyed(item_id: str, spec: KeySpec) -> AsyncIterator[dict[str, Any]]:
        for i in range(spec.count):
            yield {"id": item_id, "i": i}

    @app.post("/bad/{run_id}")
    @resumable_stream("bad:{run_id}")
    async def bad(run_id: str, spec: BadSpec) -> AsyncIterator[object]:
        async for chunk in _misbehave(spec.mode, max_bytes):
            yield chunk

    @app.post("/echo/{run_id}")
    @resumable_stream("echo:{run_id}")
    async def echo(run_id: str, spec: EchoSpec) -> AsyncIterator[object]:
        for chunk in spec.chunks:
            yield chunk


def _add_soak_routes(app: FastAPI) -> None:
    starts: dict[str, int] = {}

    @app.post("/soak/{run_id}")
    @resumable_stream("soak:{run_id}")
    async def soak(run_id: str, spec: SoakSpec) -> AsyncIterator[str]:
        starts[run_id] = starts.get(run_id, 0) + 1
        for i in range(spec.count):
            await anyio.sleep(spec.delay_ms / 1000)
            yield soak_token(run_id, i)
        if spec.hold:
            await anyio.sleep_forever()

    @app.get("/debug/soak/{run_id}")
    async def soak_record(run_id: str) -> dict[str, int]:
        return {"starts": starts.get(run_id, 0)}


def _private_router() -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.post("/private/{run_id}")
    @resumable_stream("private:{run_id}")
    async def private(run_id: str, spec: KeySpec) -> AsyncIterator[str]:
        for _ in range(spec.count):
            yield "secret"

    return router
