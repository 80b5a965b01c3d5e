"""A tiny Starlette app that `tests/test_support.py` serves through `UvicornServer`.

`/events` sends a fixed transcript (`TRANSCRIPT`) and then holds the connection open,
so a reader must stop at the terminal event by itself; `/silent` sends one event and
then only keep-alive comments.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

#: Values that raw SSE text cannot carry but JSON data can: CR, CRLF, edge spaces, U+2028.
TRICKY_VALUES = [{"text": "a\r\nb", "n": 1}, "  spaced  ", "", "é 🚀 \u2028 end\r"]

TRANSCRIPT = [
    ServerSentEvent(retry=1500),
    ServerSentEvent(json.dumps(TRICKY_VALUES[0]), id="g:1"),
    ServerSentEvent(json.dumps(TRICKY_VALUES[1]), id="g:2", event="tool"),
    ServerSentEvent(comment="ping"),
    ServerSentEvent(json.dumps(TRICKY_VALUES[2]), id="g:3"),
    ServerSentEvent("line1\nline2"),
    ServerSentEvent(json.dumps(TRICKY_VALUES[3], ensure_ascii=False), id="g:4"),
    ServerSentEvent("{}", id="g:5", event="done"),
]


async def index(request: Request) -> Response:
    return PlainTextResponse("ok")


async def env(request: Request) -> Response:
    names = ("STREAMHUB_REDIS_URL", "TINY_APP_GREETING")
    return JSONResponse({"pid": os.getpid(), **{name: os.environ.get(name) for name in names}})


async def events(request: Request) -> Response:
    async def transcript() -> AsyncIterator[ServerSentEvent]:
        for event in TRANSCRIPT:
            yield event
        await anyio.sleep_forever()

    return EventSourceResponse(transcript())


async def silent(request: Request) -> Response:
    async def one_then_pings() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent('"first"', id="s:1")
        await anyio.sleep_forever()

    return EventSourceResponse(one_then_pings(), ping=0.05)


async def echo(request: Request) -> Response:
    body = await request.json()
    cursor = request.headers.get("last-event-id")

    async def answer() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(json.dumps({"body": body, "cursor": cursor}), id="e:1")
        yield ServerSentEvent(json.dumps(dict(request.query_params)), id="e:2")

    return EventSourceResponse(answer())


async def missing(request: Request) -> Response:
    return JSONResponse({"detail": "unknown stream"}, status_code=404)


async def finished(request: Request) -> Response:
    return Response(status_code=204)


def create_app() -> Starlette:
    """The app factory (for `UvicornServer(..., factory=True)`)."""
    return Starlette(
        routes=[
            Route("/", index),
            Route("/env", env),
            Route("/events", events),
            Route("/silent", silent),
            Route("/echo", echo, methods=["POST"]),
            Route("/missing", missing),
            Route("/finished", finished),
        ]
    )


app = create_app()
