"""The programmatic API on the in-memory backend: register, publish, subscribe, resume.

This is how code outside a FastAPI route (a worker, a test, a script) produces and
reads streams. Run it with `python docs/examples/publish_subscribe.py`.
"""

import anyio

from fastapi_streamhub import Event, StreamEvent, StreamHub


def show(event: StreamEvent) -> None:
    # `event.id` is "<generation>:<seq>"; generations are random, so they are not printed.
    data = event.data.replace(event.generation, "<generation>")
    print(f"  {event.seq} {event.event or 'message'} {data}")


async def main() -> None:
    async with StreamHub() as hub:  # in a FastAPI app, `lifespan=hub.lifespan` does this
        producer, created = await hub.register("chat:1")
        print("created:", created)
        await producer.publish("Hel")  # a str arrives as a JSON string
        await producer.publish("lo")
        await producer.publish(Event("tool_call", {"name": "search"}))  # a named event
        await producer.set_metadata({"usage": {"tokens": 2}})
        print("closed with:", await producer.close())  # stores `done` with the metadata

        print("from the start:")
        async with hub.subscribe("chat:1") as subscription:
            async for event in subscription:
                show(event)

        print("after event 2:")
        first_run = producer.generation
        async with hub.subscribe("chat:1", after=f"{first_run}:2") as subscription:
            async for event in subscription:
                show(event)

        # The run has finished, so registering the key again starts a new generation.
        second, created = await hub.register("chat:1")
        print("next run created:", created, "| new generation:", second.generation != first_run)
        await second.publish("Hi again")
        await second.close()

        print("a cursor of the first run gets `reset`, then the new run:")
        async with hub.subscribe("chat:1", after=f"{first_run}:2") as subscription:
            async for event in subscription:
                show(event)

        status = await hub.status("chat:1")
        assert status is not None
        print("status:", status.status, status.last_seq, status.metadata)
        print("active:", await hub.active(["chat:1", "chat:2"]))
        print("removed:", await hub.remove("chat:1"), await hub.status("chat:1"))


if __name__ == "__main__":
    anyio.run(main)
