"""A subscription served as the AI SDK's UI message stream (protocol `v1`).

Every `data:` line is one part the SDK validates against its schema, so nothing else
goes there: keep-alives are SSE comments, and the stream ends with `data: [DONE]`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from sse_starlette import EventSourceResponse

from .._cursor import Cursor
from .._errors import SubscriberLaggedError
from .._events import StreamEvent
from .._hub import StreamHub
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


class _Replay:
    """The parts of a subscription read from seq 1, sent only after `seen`: the events a
    client has already are still translated, so the parts after them are the same as in
    a full replay (the same block ids, a block's start sent once)."""

    def __init__(self, seen: Cursor | None) -> None:
        self._writer = PartWriter()
        self._seen = seen

    def encode(self, batch: Iterable[StreamEvent]) -> bytes:
        text = []
        for event in batch:
            if event.event == "reset":
                self._seen = None
            parts = self._writer.parts(event)
            if not self._already_seen(event):
                text.append(encode_parts(event, parts))
        return "".join(text).encode("utf-8")

    def _already_seen(self, event: StreamEvent) -> bool:
        seen = self._seen
        return seen is not None and event.generation == seen.generation and event.seq <= seen.seq


async def _body(subscription: Subscription, seen: Cursor | None) -> AsyncIterator[bytes]:
    replay = _Replay(seen)
    try:
        async for batch in subscription.batches():
            chunk = replay.encode(batch)
            if chunk:
                yield chunk
    except SubscriberLaggedError as exc:
        logger.warning("%s", exc)
        yield part_line(_LAGGED).encode()
    finally:
        await subscription.aclose()
    yield _DONE


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
        _body(subscription, seen), hub.config, hub.send_guard, UI_MESSAGE_STREAM_HEADERS
    )
