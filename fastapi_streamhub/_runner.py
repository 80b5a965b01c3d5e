"""Drives a user's async generator into a producer, as the generation's first source.

The rules of how a generator's values and exceptions become events are `_feed.py`'s;
here the producer becomes `current_producer()` for the generator (and for every
source it spawns, whose tasks inherit the context).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ._feed import feed
from ._producer import CURRENT, Producer


def current_producer() -> Producer:
    """The producer fed by the running `@resumable_stream` generator (for its metadata,
    and to start more sources with `spawn`).

    Raises:
        LookupError: called outside such a generator.
    """
    try:
        return CURRENT.get()
    except LookupError:
        raise LookupError(
            "current_producer() is only available inside a @resumable_stream generator"
        ) from None


async def drive(producer: Producer, generator: AsyncGenerator[object, None]) -> None:
    CURRENT.set(producer)
    await feed(producer, generator)
