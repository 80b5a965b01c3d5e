"""Saving each finished answer to the app's own database, and reading a compacted one.

`on_finish` is called with the `StreamResult` of every generation once its terminal
event is stored, on the instance that ran it. If that instance dies first, another
runs it with the same generation id: key the saved row by it, and saving twice is
harmless. Once compacted, the answer's tokens are one record; a cursor inside it still
resumes exactly, with the rest of the text. Run it with `python docs/examples/finish_hook.py`.
"""

from typing import Any

import anyio

from fastapi_streamhub import StreamHub, StreamResult

database: dict[str, dict[str, Any]] = {}  # the app's table of answers, by generation id
saved = anyio.Event()


async def save_answer(result: StreamResult) -> None:
    database[result.generation] = {  # an upsert: a second call changes nothing
        "chat": result.key,
        "status": result.status,
        "text": result.text,
        "usage": result.usage,
    }
    saved.set()


async def main() -> None:
    async with StreamHub(on_finish=save_answer, compact_after_s=0) as hub:
        producer, _ = await hub.register("chat:1")
        for token in ["Hel", "lo", " wor", "ld"]:
            await producer.publish(token)
        await producer.set_metadata({"usage": {"tokens": 4}})
        await producer.close()

        await saved.wait()
        print("saved:", database[producer.generation])

        result = await hub.result("chat:1")
        assert result is not None
        print(f"result: {result.status} {result.text!r}, last event {result.last_seq}")

        await hub.compact("chat:1")  # what compact_after_s does by itself
        cursor = f"{producer.generation}:2"  # a client saw "Hel" and "lo"
        async with hub.subscribe("chat:1", after=cursor) as subscription:
            async for event in subscription:
                print(f"{event.seq} {event.event or 'message'} {event.data}")


if __name__ == "__main__":
    anyio.run(main)
