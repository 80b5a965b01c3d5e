"""Resumable endpoints fed by OpenAI streams: Chat Completions and the Responses API.

Serve it with `uvicorn openai_chat:app --app-dir docs/examples` (with `OPENAI_API_KEY`
set, and `OPENAI_BASE_URL` for another OpenAI-compatible server), or run this file:
`main()` sends one request to each route in-process and prints the exact answers.
"""

import os
import re
from collections.abc import AsyncIterator

from fastapi import FastAPI
from openai import AsyncOpenAI
from pydantic import BaseModel

from fastapi_streamhub import Event, StreamHub, resumable_stream
from fastapi_streamhub.openai import chat_completion_events, response_events

# --8<-- [start:app]
llm = AsyncOpenAI()  # reads OPENAI_API_KEY, and OPENAI_BASE_URL if set
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4.1-mini")
hub = StreamHub()
app = FastAPI(lifespan=hub.lifespan)


class Prompt(BaseModel):
    text: str


CITY: dict[str, object] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


@app.post("/chat/{chat_id}")
@resumable_stream("chat:{chat_id}")
async def chat(chat_id: str, prompt: Prompt) -> AsyncIterator[str | Event]:
    stream = await llm.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": prompt.text}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": CITY}}],
        stream=True,
        stream_options={"include_usage": True},  # usage arrives on `done`
    )
    # `async with` closes the request to the model however this generator stops:
    # finished, failed, or cancelled (Stop), so no tokens are billed after Stop.
    async with chat_completion_events(stream) as events:
        async for item in events:
            yield item


@app.post("/respond/{chat_id}")
@resumable_stream("respond:{chat_id}")
async def respond(chat_id: str, prompt: Prompt) -> AsyncIterator[str | Event]:
    stream = await llm.responses.create(
        model=MODEL,
        input=prompt.text,
        tools=[{"type": "function", "name": "get_weather", "parameters": CITY, "strict": True}],
        stream=True,
    )
    async with response_events(stream) as events:
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
        for url in ("/chat/1", "/respond/1"):
            response = await client.post(url, json={"text": "Weather in Paris?"})
            print(f"--- POST {url}")
            print(redact(response.text).rstrip("\n"))


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
