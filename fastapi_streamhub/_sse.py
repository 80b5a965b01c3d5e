"""Server-Sent Events on the wire: ids, names and JSON data, many events per write.

Events are encoded here rather than one `ServerSentEvent` at a time: a batch
from storage or from the live queue goes out as one chunk, one ASGI send. The
data is compact JSON, which never contains CR or LF, so it is always one line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Send

from ._config import HubConfig
from ._errors import SubscriberLaggedError
from ._events import StreamEvent
from ._subscription import Subscription

logger = logging.getLogger("fastapi_streamhub")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_events(events: Iterable[StreamEvent]) -> bytes:
    parts: list[str] = []
    for event in events:
        if event.event is None:
            parts.append(f"id: {event.generation}:{event.seq}\ndata: {event.data}\n\n")
        else:
            parts.append(
                f"id: {event.generation}:{event.seq}\nevent: {event.event}\ndata: {event.data}\n\n"
            )
    return "".join(parts).encode("utf-8")


async def _body(subscription: Subscription, retry_ms: int) -> AsyncIterator[bytes]:
    yield f"retry: {retry_ms}\n\n".encode()
    try:
        async for batch in subscription.batches():
            yield encode_events(batch)
    except SubscriberLaggedError as exc:
        logger.warning("%s", exc)
        yield b": lagged: the client read too slowly; resume from the last event id\n\n"
    finally:
        await subscription.aclose()


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep="\n")


class StreamResponse(EventSourceResponse):
    """sse-starlette's response without a cancel scope around every send.

    The hub sets no `send_timeout`, yet sse-starlette still enters a cancel scope
    with no deadline for each send: about 3 µs, paid per token by every reader at an
    LLM's pace (one send per token). A send stays cancellable without it.
    """

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        await send(message)


def sse_response(subscription: Subscription, config: HubConfig) -> EventSourceResponse:
    return StreamResponse(
        _body(subscription, config.retry_ms),
        headers=SSE_HEADERS,
        ping=config.keepalive_s,
        ping_message_factory=_ping,
        sep="\n",
    )
