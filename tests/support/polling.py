"""Bounded polling of another process's state, for facts no event announces."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, interval_s: float = 0.02
) -> None:
    """Return once `condition()` is true; raise `TimeoutError` after `timeout_s`."""
    with anyio.fail_after(timeout_s):
        while not await condition():  # noqa: ASYNC110 - the state lives in another process
            await anyio.sleep(interval_s)
