"""An app that serves its metrics, for the multi-worker test: run it under
`uvicorn --workers N` with `PROMETHEUS_MULTIPROC_DIR` set. Each answer names the
worker process that gave it (`X-Worker-Pid`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware.base import RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from fastapi_streamhub import StreamHub, resumable_stream
from fastapi_streamhub.prometheus import PrometheusObserver, add_metrics_route

hub = StreamHub(observers=[PrometheusObserver()])
app = FastAPI(lifespan=hub.lifespan)
add_metrics_route(app)


@app.middleware("http")
async def name_the_worker(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.post("/chat/{chat_id}")
@resumable_stream("chat:{chat_id}")
async def chat(chat_id: str) -> AsyncIterator[str]:
    yield "hello"
    yield "world"
