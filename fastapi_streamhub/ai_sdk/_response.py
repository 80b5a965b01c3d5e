"""A subscription served as the AI SDK's UI message stream (protocol `v1`).

Every `data:` line is one part the SDK validates against its schema, so nothing else
goes there: keep-alives are SSE comments, and the stream ends with `data: [DONE]`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse

from .._cursor import Cursor
from .._errors import SubscriberLaggedError
from .._events import StreamEvent
from .._hub import StreamHub
from .._logs import about
from .._sse import SSE_HEADERS, stream_response
from .._subscription import Subscription
from ._parts import Part, PartWriter, encode_parts, part_line

logger = logging.getLogger("fastapi_streamhub")

UI_MESSAGE_STREAM_HEADERS = {**SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1"}
"""Sent with every UI message stream, beside `content-type: text/event-stream`."""

_DONE = b"data: [DONE]\n\n"
_LAGGED: Part = {
    "type": "error",
    "errorText": "The connection fell behind the stream; reload the page to catch up.",
}


async def _body(
    subscription: Subscription, hub: StreamHub, seen: Cursor | None
) -> AsyncIterator[bytes]:
    writer = PartWriter(subscription.key)
    inside: StreamEvent | None = None
    try:
        if seen is not None:
            subscription, inside = await _past(subscription, hub, seen, writer)
        async for batch in subscription.batches():
            if inside is not None:
                _enter_run(writer, inside, batch)
                inside = None
            chunk = "".join(encode_parts(event, writer.parts(event)) for event in batch)
            if chunk:
                yield chunk.encode("utf-8")
    except SubscriberLaggedError as exc:
        key, generation = subscription.key, subscription.generation
        logger.info(
            "stream %r (generation %s): %s", key, generation, exc, extra=about(key, generation)
        )
        yield part_line(_LAGGED).encode()
    finally:
        await subscription.aclose()
    yield _DONE


async def _past(
    subscription: Subscription, hub: StreamHub, seen: Cursor, writer: PartWriter
) -> tuple[Subscription, StreamEvent | None]:
    """Translate, without sending, the events up to `seen` (the parts after them depend
    on them: the same block ids, a block's start sent once), then follow from `seen`
    itself. Reading on from the cursor, rather than filtering a replay from seq 1, is
    what gives the rest of a merged text run whose middle `seen` points into (a
    compacted generation), instead of the whole run again. Returns the new subscription
    and the first event past the cursor, which may be that run."""
    beyond: StreamEvent | None = None
    async for batch in subscription.batches():
        if any(event.generation != seen.generation for event in batch):
            break
        beyond = next((event for event in batch if event.seq > seen.seq), None)
        for event in batch:
            if event.seq > seen.seq:
                break
            writer.parts(event)
        if beyond is not None or batch[-1].terminal:
            break
    await subscription.aclose()
    return await hub.subscribe(subscription.key, after=seen).open(), beyond


def _enter_run(writer: PartWriter, beyond: StreamEvent, batch: list[StreamEvent]) -> None:
    """The cursor points inside a merged run when reading from it gives the same event
    with less text: the client saw that run's start, so the writer enters it silently."""
    if batch and batch[0].seq == beyond.seq and batch[0].data != beyond.data:
        writer.parts(beyond)


def ui_message_stream_response(
    subscription: Subscription, hub: StreamHub, *, seen: Cursor | None = None
) -> EventSourceResponse:
    """Serve `subscription` as a UI message stream that `useChat` reads.

    The subscription must read its generation from seq 1 (`hub.subscribe(key,
    after=Cursor(generation, 0))`), since the parts of an event depend on those before
    it. With `seen`, the parts of the events up to that cursor are not sent: the client
    has them.
    """
    return stream_response(
        _body(subscription, hub, seen),
        hub.config,
        hub.send_guard,
        UI_MESSAGE_STREAM_HEADERS,
        stream=(subscription.key, subscription.generation),
    )
