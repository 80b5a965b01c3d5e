"""A one-shot wake-up for one waiting task: the cheapest primitive of the hot path.

Every live reader waits once per event it sends, and the writer once per round,
so this is paid per token. A bare asyncio future costs about half of what an
`anyio.Event` does per wake-up (its wrapper, an `asyncio.Event`, and the future
that one creates): about 6 µs less per wait in a ping-pong probe. The hub runs
where its servers and clients do, on asyncio (uvicorn, redis-py's asyncio client).
"""

from __future__ import annotations

import asyncio


class Waiter:
    """For exactly one waiting task, which creates it (cancelling that task cancels the
    future, so it must not be shared); `set` may be called any number of times."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self) -> None:
        await self._future
