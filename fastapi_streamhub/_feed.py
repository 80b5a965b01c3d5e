"""Feeds an async generator into whatever writes its events, and ends it truthfully.

A yielded value becomes an event; completion becomes the end `done`; `StreamError` an
`error` with its own message; any other exception an `error` with a generic message
(the traceback goes to the log, never to the client). The same rules hold for the
generation's first source (the producer itself) and for every other source.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Protocol

import anyio

from ._errors import ProducerStoppedError, StreamError
from ._events import UnsupportedChunkError
from ._logs import about

logger = logging.getLogger("fastapi_streamhub")

_CLOSE_TIMEOUT_S = 5.0


class Ending(Protocol):
    """What ends with `done` or `error`: a producer, or a source."""

    async def close(self) -> object: ...

    async def fail(self, message: str, *, reason: str = "failed") -> object: ...


class Sink(Ending, Protocol):
    """Where a generator's events go: a producer (the first source) or another source."""

    @property
    def key(self) -> str: ...

    @property
    def generation(self) -> str: ...

    async def publish(self, chunk: object) -> None: ...


async def feed(sink: Sink, generator: AsyncIterator[object]) -> None:
    try:
        async for chunk in generator:
            await sink.publish(chunk)
    except ProducerStoppedError:
        return
    except StreamError as exc:
        await sink.fail(exc.message)
        return
    except UnsupportedChunkError as exc:
        key, generation = sink.key, sink.generation
        logger.error(
            "stream %r (generation %s): %s", key, generation, exc, extra=about(key, generation)
        )
        await sink.fail("The stream produced a value that cannot be sent.", reason="unsupported")
        return
    except Exception:
        key, generation = sink.key, sink.generation
        logger.exception(
            "stream %r (generation %s): the producer raised",
            key,
            generation,
            extra=about(key, generation),
        )
        await sink.fail("The stream failed.", reason="failed")
        return
    finally:
        await _close(generator)
    await sink.close()


async def end_on_exit(ending: Ending, exc: BaseException | None) -> bool:
    """End `ending` by how the `async with` block around it exited, with the rules above
    (the traceback is the block's own to raise). False for a cancel (no `Exception`):
    the caller ends it its own way."""
    if exc is None or isinstance(exc, ProducerStoppedError):
        await ending.close()
    elif isinstance(exc, StreamError):
        await ending.fail(exc.message)
    elif isinstance(exc, Exception):
        await ending.fail("The stream failed.")
    else:
        return False
    return True


async def _close(generator: AsyncIterator[object]) -> None:
    """A generator stopped early runs its `finally` (shielded: a cancel is what stopped it)."""
    aclose = getattr(generator, "aclose", None)
    if aclose is not None and getattr(generator, "ag_frame", True) is not None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
            await aclose()
