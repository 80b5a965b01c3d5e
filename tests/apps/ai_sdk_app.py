"""An app for the AI SDK tests: `@ai_sdk_stream` routes whose answers the request scripts.

`POST /api/chat` answers with `count` tokens (`tok0 `, `tok1 `, ...), `delay_ms` apart; with
`tools`, a model's whole vocabulary first (reasoning, a tool call with its result, a
failed one, a step, a data part, message metadata); with `fail`, a `StreamError` at the
end. `POST /guarded/chat` is the same behind a bearer token. `TEST_REDIS_URL` selects
the Redis backend (`redis+cluster://` a cluster); `GET /debug/runs/{id}` says how often
this instance started a chat's generator, how many tokens it yielded, and whether its
`finally` ran, and the message id `current_message_id()` gave it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException

from fastapi_streamhub import Event, StreamError, StreamHub, current_producer
from fastapi_streamhub.ai_sdk import ChatRequest, ai_sdk_stream, current_message_id

USAGE = {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}


class Script(ChatRequest):
    """`useChat`'s body, plus the fields the page sends through the transport's `body`."""

    count: int = 3
    delay_ms: float = 0
    tools: bool = False
    fail: bool = False


def token(i: int) -> str:
    return f"tok{i} "


def require_token(authorization: str | None = Header(None)) -> None:
    if authorization != "Bearer alice":
        raise HTTPException(401, "missing credentials")


async def vocabulary() -> AsyncIterator[str | Event]:
    """One of each named event an `@ai_sdk_stream` generator may yield."""
    yield Event("reasoning", "Look it up. ")
    yield Event("reasoning", "Then answer.")
    yield Event("tool_call_start", {"id": "call_1", "name": "get_weather"})
    yield Event("tool_call_delta", {"id": "call_1", "delta": '{"city":'})
    yield Event("tool_call_delta", {"id": "call_1", "delta": '"Paris"}'})
    yield Event(
        "tool_call", {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    )
    yield Event("tool_result", {"id": "call_1", "output": {"celsius": 21}})
    yield Event("tool_call", {"id": "call_2", "name": "get_time", "arguments": {}})
    yield Event("tool_error", {"id": "call_2", "error": "The clock is broken."})
    yield Event("step")
    yield Event("data-weather", {"city": "Paris", "celsius": 21})
    yield Event("message_metadata", {"model": "weather-1"})


def create_app() -> FastAPI:
    url = os.environ.get("TEST_REDIS_URL")
    options: dict[str, Any] = {"lease_ttl_s": 2.0, "keepalive_s": 0.2}
    hub = StreamHub.from_url(url, **options) if url else StreamHub(**options)
    app = FastAPI(lifespan=hub.lifespan)
    runs: dict[str, dict[str, Any]] = {}

    async def answer(chat: Script) -> AsyncIterator[str | Event]:
        record = runs.setdefault(chat.id, {"starts": 0, "yielded": 0, "finally": 0})
        record["starts"] += 1
        record["message_id"] = current_message_id()
        try:
            if chat.tools:
                async for item in vocabulary():
                    yield item
            for i in range(chat.count):
                if chat.delay_ms:
                    await anyio.sleep(chat.delay_ms / 1000)
                record["yielded"] += 1
                yield token(i)
            if chat.fail:
                raise StreamError("The model is unavailable.")
            await current_producer().set_metadata({"usage": USAGE, "finish_reason": "stop"})
        finally:
            record["finally"] += 1

    @app.post("/api/chat")
    @ai_sdk_stream("chat:{id}")
    async def chat(chat: Script) -> AsyncIterator[str | Event]:
        async with aclosing(answer(chat)) as items:
            async for item in items:
                yield item

    @app.post("/guarded/chat", dependencies=[Depends(require_token)])
    @ai_sdk_stream("guarded:{id}")
    async def guarded(chat: Script) -> AsyncIterator[str | Event]:
        async with aclosing(answer(chat)) as items:
            async for item in items:
                yield item

    @app.get("/debug/runs/{chat_id}")
    async def debug(chat_id: str) -> dict[str, Any]:
        return runs.get(chat_id, {"starts": 0, "yielded": 0, "finally": 0})

    _debug_compaction(app, hub)
    return app


def _debug_compaction(app: FastAPI, hub: StreamHub) -> None:
    @app.post("/debug/compact/{chat_id}")
    async def compact_now(chat_id: str) -> bool:
        return await hub.compact(f"chat:{chat_id}")
