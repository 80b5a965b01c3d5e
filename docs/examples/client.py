"""Reading streams from Python with `StreamClient`: start, resume, 204, reset, status, cancel.

`main()` serves a small app in-process (through httpx's ASGI transport, which delivers a
response once it is complete) and reads it with the client; point a `StreamClient` at
`http://host:port` instead to read a server over the network, where it also reconnects
by itself. Run it with `python docs/examples/client.py`.
"""

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, resumable_stream
from fastapi_streamhub.client import StreamClient, StreamNotFoundError

hub = StreamHub()
app = FastAPI(lifespan=hub.lifespan)


class Prompt(BaseModel):
    text: str


@app.post("/chat/{chat_id}")
@resumable_stream("chat:{chat_id}")
async def chat(chat_id: str, prompt: Prompt) -> AsyncIterator[str]:
    for word in prompt.text.split():
        yield word + " "


# --8<-- [start:answer]
async def answer(client: StreamClient, path: str, text: str) -> str:
    """Start a generation and return its whole answer, however often the connection drops."""
    answer = ""
    async with client.start(path, json={"text": text}) as stream:
        async for event in stream:
            if event.event == "reset":  # a new generation replaced the one being read
                answer = ""
            elif event.event is None:  # a chunk of the answer
                answer += event.value
            elif event.event == "error":  # `done` and `cancelled` end the loop as well
                raise RuntimeError(event.value["message"])
    return answer


# --8<-- [end:answer]


async def main() -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as http,
    ):
        # --8<-- [start:client]
        client = StreamClient(http=http, headers={"Authorization": "Bearer s3cret"})
        # --8<-- [end:client]
        print(repr(await answer(client, "/chat/1", "Hello resumable world")))

        # --8<-- [start:resume]
        status = await client.status("/chat/1")
        print(f"status={status.status} last_event_id=G1:{status.last_seq}")
        cursor = f"{status.generation}:2"  # say we had processed event 2 before a crash
        async with client.attach("/chat/1", last_event_id=cursor) as stream:
            async for event in stream:
                print(f"{event.seq} {event.event or 'message'} {event.data}")
        # --8<-- [end:resume]

        async with client.attach("/chat/1", last_event_id=status.last_event_id) as stream:
            print("after the end (204):", [event async for event in stream])

        print(repr(await answer(client, "/chat/1", "Second turn")))
        async with client.attach("/chat/1", last_event_id=cursor) as stream:
            print("old cursor:", [(event.seq, event.event) async for event in stream])

        result = await client.cancel("/chat/1")
        print(f"cancel: cancelled={result.cancelled} status={result.status.status}")
        try:
            await client.status("/chat/2")
        except StreamNotFoundError as exc:
            print(f"{exc.status_code}: {exc.detail}")


if __name__ == "__main__":
    import anyio

    anyio.run(main)
