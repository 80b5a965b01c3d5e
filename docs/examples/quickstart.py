"""The quickstart: a resumable chat endpoint on the in-memory backend.

Serve it with `make quickstart` (port 8010), or run this file
(`.venv/bin/python docs/examples/quickstart.py`): `main()` starts the app in-process and
prints what an HTTP client receives.
"""

# --8<-- [start:app]
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, resumable_stream

hub = StreamHub()  # in memory; StreamHub.from_url("redis://...") shares streams
app = FastAPI(lifespan=hub.lifespan)


class Prompt(BaseModel):
    text: str


@app.post("/chat/{chat_id}")
@resumable_stream("chat:{chat_id}")
async def chat(chat_id: str, prompt: Prompt) -> AsyncIterator[str]:
    for word in prompt.text.split():
        yield word + " "  # a real app yields its LLM's tokens
    # --8<-- [end:app]


# --8<-- [start:driver]
async def main() -> None:
    # The demo driver needs httpx; the app above is the whole quickstart.
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),  # what the server runs at startup and shutdown
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):
        answer = await client.post("/chat/42", json={"text": "Hello resumable world"})
        generation = answer.text.split("id: ", 1)[1].split(":", 1)[0]
        print(answer.status_code, answer.headers["content-type"])
        print(answer.text.replace(generation, "<generation>"))

        # A client that saw event 2 resumes after it, on any instance.
        cursor = {"Last-Event-ID": f"{generation}:2"}
        rest = await client.get("/chat/42/stream", headers=cursor)
        print(rest.text.replace(generation, "<generation>"))

        # A client that already saw the terminal event is told there is nothing more.
        finished = {"Last-Event-ID": f"{generation}:4"}
        print((await client.get("/chat/42/stream", headers=finished)).status_code)
    # --8<-- [end:driver]


if __name__ == "__main__":
    import anyio

    anyio.run(main)
