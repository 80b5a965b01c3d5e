"""A back end for the Vercel AI SDK's `useChat`, fed by an OpenAI stream, resumable.

Serve it with `uvicorn ai_sdk_chat:app --app-dir docs/examples` (with `OPENAI_API_KEY` set,
and `OPENAI_BASE_URL` for another OpenAI-compatible server) and point `useChat` at it, or
run this file: `main()` sends what `useChat` sends and prints the exact answers.
"""

import os
import re
from collections.abc import AsyncIterator

from fastapi import FastAPI
from openai import AsyncOpenAI

from fastapi_streamhub import Event, StreamHub
from fastapi_streamhub.ai_sdk import ChatRequest, ai_sdk_stream
from fastapi_streamhub.openai import chat_completion_events

# --8<-- [start:app]
llm = AsyncOpenAI()  # reads OPENAI_API_KEY, and OPENAI_BASE_URL if set
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
hub = StreamHub()  # StreamHub.from_url("redis://...") to share streams between instances
app = FastAPI(lifespan=hub.lifespan)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@app.post("/api/chat")  # useChat's default endpoint
@ai_sdk_stream("chat:{id}")  # {id}: the chat id useChat sends in the body
async def chat(chat: ChatRequest) -> AsyncIterator[str | Event]:
    stream = await llm.chat.completions.create(
        model=MODEL,
        messages=[{"role": m.role, "content": m.text} for m in chat.messages],
        tools=[WEATHER],
        stream=True,
        stream_options={"include_usage": True},  # usage arrives on `finish`
    )
    async with chat_completion_events(stream) as events:
        async for item in events:
            yield item


# --8<-- [end:app]


async def main() -> None:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):
        question = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Paris?"}]}
        body = {"id": "chat-1", "messages": [question], "trigger": "submit-message"}
        response = await client.post("/api/chat", json=body)
        print("--- POST /api/chat")
        for name in ("content-type", "x-vercel-ai-ui-message-stream"):
            print(f"{name}: {response.headers[name]}")
        print()
        print(redact(response.text).rstrip("\n"))
        resumed = await client.get("/api/chat/chat-1/stream")  # what useChat asks on a reload
        print("--- GET /api/chat/chat-1/stream")
        print(resumed.status_code, "(the answer has finished: nothing to resume)")


_names: dict[str, str] = {}


def redact(text: str) -> str:
    """Name the random generation ids G1, G2... in order of appearance."""
    for found in re.findall(r"^id: ([\w-]{22}):", text, re.MULTILINE):
        _names.setdefault(found, f"G{len(_names) + 1}")
    for real, name in _names.items():
        text = text.replace(real, name)
    return text


if __name__ == "__main__":
    import anyio

    anyio.run(main)
