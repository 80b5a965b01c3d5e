"""A FastAPI app with `@resumable_stream`, and every answer its routes give.

Serve it with `uvicorn fastapi_app:app --app-dir docs/examples`, or run this file:
`main()` starts the app in-process and prints the exact HTTP answers.
"""

import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from fastapi_streamhub import Event, StreamError, StreamHub, current_producer, resumable_stream

hub = StreamHub()
app = FastAPI(lifespan=hub.lifespan)
router = APIRouter()  # at startup, the hub mounts resume, cancel and status here


class Prompt(BaseModel):
    text: str


@router.post("/{chat_id}")
@resumable_stream("chat:{chat_id}")
async def chat(chat_id: str, prompt: Prompt) -> AsyncIterator[str | Event]:
    yield Event("prompt", {"text": prompt.text})  # a named event: `event: prompt`
    words = prompt.text.split()
    for word in words:
        yield word + " "
    # The producer this generator feeds holds the metadata that `done` carries.
    await current_producer().set_metadata({"usage": {"words": len(words)}})
    if prompt.text.endswith("?"):
        raise StreamError("Questions are not supported yet.")  # shown to the user as is


app.include_router(router, prefix="/chat")  # the prefix applies to every route of the stream


async def main() -> None:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):

        async def show(method: str, url: str, *, cursor: str = "", body: str = "") -> None:
            request = client.build_request(
                method,
                url,
                headers={"Last-Event-ID": cursor} if cursor else None,
                json={"text": body} if body else None,
            )
            response = await client.send(request)
            shown = f" Last-Event-ID: {cursor}" if cursor else f" {body!r}" if body else ""
            print(redact(f"--- {method} {url}{shown}"))
            print(f"{response.status_code} {response.headers.get('content-type', '')}".rstrip())
            if response.text:
                print(redact(response.text).rstrip("\n"))

        await show("POST", "/chat/1", body="Hi there")
        await show("GET", "/chat/1/status")
        await show("GET", "/chat/1/stream", cursor=f"{generation('G1')}:3")
        await show("GET", "/chat/1/stream", cursor=f"{generation('G1')}:4")
        await show("POST", "/chat/1", body="Why?")  # the next run: a new generation
        await show("GET", f"/chat/1/stream?last_event_id={generation('G1')}:3")
        await show("GET", "/chat/1/stream", cursor="not-a-cursor")
        await show("GET", "/chat/2/stream")
        await show("POST", "/chat/1/cancel")

        print("--- GET /openapi.json: the status and type of each route's success answer")
        paths = (await client.get("/openapi.json")).json()["paths"]
        for path, operations in paths.items():
            for method, operation in operations.items():
                status = min(code for code in operation["responses"] if code.startswith("2"))
                types = ", ".join(operation["responses"][status]["content"])
                print(f"{method.upper()} {path}: {status} {types}")


_names: dict[str, str] = {}


def redact(text: str) -> str:
    """Name the random generation ids G1, G2... in order of appearance."""
    for found in re.findall(r'(?:^id: |"generation":")([\w-]{22})', text, re.MULTILINE):
        _names.setdefault(found, f"G{len(_names) + 1}")
    for real, name in _names.items():
        text = text.replace(real, name)
    return text


def generation(name: str) -> str:
    """The real generation id behind a name that `redact` gave."""
    return next(real for real, given in _names.items() if given == name)


if __name__ == "__main__":
    import anyio

    anyio.run(main)
