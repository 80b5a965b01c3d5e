"""Drives a user's async generator into a producer, and ends the stream truthfully.

A yielded value becomes an event; completion becomes `done`; `StreamError` an
`error` with its own message; any other exception an `error` with a generic
message (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextvars import ContextVar

import anyio

from ._errors import ProducerStoppedError, StreamError
from ._events import UnsupportedChunkError
from ._logs import about
from ._producer import Producer

logger = logging.getLogger("fastapi_streamhub")

_CLOSE_TIMEOUT_S = 5.0

_current: ContextVar[Producer] = ContextVar("streamhub_producer")


def current_producer() -> Producer:
    """The producer fed by the running `@resumable_stream` generator (for its metadata).

    Raises:
        LookupError: called outside such a generator.
    """
    try:
        return _current.get()
    except LookupError:
        raise LookupError(
            "current_producer() is only available inside a @resumable_stream generator"
        ) from None


async def drive(producer: Producer, generator: AsyncGenerator[object, None]) -> None:
    _current.set(producer)
    try:
        async for chunk in generator:
            await producer.publish(chunk)
    except ProducerStoppedError:
        return
    except StreamError as exc:
        await producer.fail(exc.message)
        return
    except UnsupportedChunkError as exc:
        key, generation = producer.key, producer.generation
        logger.error(
            "stream %r (generation %s): %s", key, generation, exc, extra=about(key, generation)
        )
        await producer.fail(
            "The stream produced a value that cannot be sent.", reason="unsupported"
        )
        return
    except Exception:
        logger.exception(
            "stream %r (generation %s): the producer raised",
            producer.key,
            producer.generation,
            extra=about(producer.key, producer.generation),
        )
        await producer.fail("The stream failed.", reason="failed")
        return
    finally:
        if getattr(generator, "ag_frame", True) is not None:  # stopped early: run its `finally`
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_TIMEOUT_S):
                await generator.aclose()
    await producer.close()
