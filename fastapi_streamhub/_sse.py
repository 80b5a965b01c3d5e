"""Server-Sent Events on the wire: ids, names and JSON data, many events per write.

Events are encoded here rather than one `ServerSentEvent` at a time: a batch
from storage or from the live queue goes out as one chunk, one ASGI send. The
data is compact JSON, which never contains CR or LF, so it is always one line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

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
    """sse-starlette's response, ended quietly when a send outlasts `send_timeout`.

    A client that stops reading (a frozen tab, a stalled proxy) blocks the send once
    the socket buffers are full, and a blocked send would hold its reader forever.
    sse-starlette bounds every send with `send_timeout` and then raises; this ends the
    response with one warning instead of an error with a traceback. The client can
    resume from the last event it read.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except* SendTimeoutError:
            logger.warning(
                "%s: the client stopped reading for %s s; its response was ended",
                scope.get("path"),
                self.send_timeout,
            )


def sse_response(subscription: Subscription, config: HubConfig) -> EventSourceResponse:
    return StreamResponse(
        _body(subscription, config.retry_ms),
        headers=SSE_HEADERS,
        ping=config.keepalive_s,
        ping_message_factory=_ping,
        sep="\n",
        send_timeout=config.send_timeout_s,
    )
