"""Reading a whole stream through the programmatic API, bounded in time."""

from __future__ import annotations

import anyio

from fastapi_streamhub import StreamEvent, StreamHub


async def collect(
    hub: StreamHub, key: str, after: str | None = None, *, timeout_s: float = 10.0
) -> list[StreamEvent]:
    """Every event after `after` up to and including the terminal one."""
    got: list[StreamEvent] = []
    with anyio.fail_after(timeout_s):
        async with hub.subscribe(key, after=after) as subscription:
            async for event in subscription:
                got.append(event)
    return got
