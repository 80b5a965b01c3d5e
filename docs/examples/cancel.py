"""Producing from a task the hub owns, following it live, and cancelling it.

`hub.spawn` runs the producing code as a task of the hub (not of the caller), inside a
cancel scope that a cancel from any instance triggers. This is what `@resumable_stream`
does with an endpoint's generator. Run it with `python docs/examples/cancel.py`.
"""

from collections.abc import AsyncIterator

import anyio

from fastapi_streamhub import Producer, StreamHub


async def stalling_model() -> AsyncIterator[str]:
    for token in ["Once", " upon", " a time"]:
        yield token
    await anyio.sleep_forever()  # the model stalls: only a cancel ends this run
    yield " never sent"


async def main() -> None:
    async with StreamHub() as hub:
        producer, _ = await hub.register("story")
        worker_stopped = anyio.Event()

        async def produce(producer: Producer) -> None:
            try:
                async for token in stalling_model():
                    await producer.publish(token)
                await producer.close()
            finally:  # runs when the cancel interrupts the task
                worker_stopped.set()

        hub.spawn(producer, lambda: produce(producer))

        async with hub.subscribe("story") as subscription:
            async for event in subscription:
                print(f"{event.seq} {event.event or 'message'} {event.data}")
                if event.seq == 3:  # "stop" clicked, on this instance or any other
                    result = await hub.cancel("story", wait=2.0)
                    assert result is not None
                    print(f"cancelled={result.cancelled} stopped={result.stopped}")
                    print(f"status={result.status.status} last_seq={result.status.last_seq}")
        # The subscription ended by itself at the stored `cancelled` event.

        await worker_stopped.wait()
        print("producer:", await producer.wait())
        again = await hub.cancel("story")
        assert again is not None
        print("cancel again: cancelled =", again.cancelled)


if __name__ == "__main__":
    anyio.run(main)
