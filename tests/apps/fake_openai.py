"""A fake OpenAI-compatible server for the example app's tests.

It streams a long chat completion (`"w0 "`, `"w1 "`, ...) slowly, in the Chat Completions
chunk format, and counts how its streams end: `GET /stats` tells a test whether the example
app closed the upstream request when the chat was stopped, or left it running.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

CHUNKS = 2000
INTERVAL_S = 0.02

app = FastAPI()
stats = {"requests": 0, "open": 0, "completed": 0, "abandoned": 0}


def _chunk(model: str, content: str) -> str:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def _stream(model: str) -> AsyncIterator[str]:
    stats["open"] += 1
    completed = False
    try:
        for i in range(CHUNKS):
            yield _chunk(model, f"w{i} ")
            await anyio.sleep(INTERVAL_S)
        yield "data: [DONE]\n\n"
        completed = True
    finally:
        stats["open"] -= 1
        stats["completed" if completed else "abandoned"] += 1


@app.post("/v1/chat/completions")
async def completions(body: dict[str, Any]) -> StreamingResponse:
    stats["requests"] += 1
    return StreamingResponse(_stream(body["model"]), media_type="text/event-stream")


@app.get("/stats")
async def read_stats() -> dict[str, int]:
    return stats
