"""Server-Sent Events on the wire: ids, names and JSON data, many events per write.

Events are encoded here rather than one `ServerSentEvent` at a time: a batch
from storage or from the live queue goes out as one chunk, one ASGI send. The
data is compact JSON, which never contains CR or LF, so it is always one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Receive, Scope, Send

from ._config import HubConfig
from ._errors import SubscriberLaggedError
from ._events import StreamEvent
from ._logs import about
from ._send_guard import SendGuard
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
        key, generation = subscription.key, subscription.generation
        logger.info(
            "stream %r (generation %s): %s", key, generation, exc, extra=about(key, generation)
        )
        yield b": lagged: the client read too slowly; resume from the last event id\n\n"
    finally:
        await subscription.aclose()


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep="\n")


class StreamResponse(EventSourceResponse):
    """sse-starlette's response, ended when one send outlasts the hub's send timeout.

    A client that stops reading blocks the send once the socket buffers are full; the
    hub's `SendGuard` then cancels this response (one clock read per send, instead of
    a timed cancel scope around each), and it ends with one warning (a connection held
    open but unread for that long is rare, and often a buffering proxy). The client
    can resume from the last event it read. `stream` is the key and generation served,
    for that warning.
    """

    def __init__(
        self,
        *args: Any,
        guard: SendGuard,
        stream: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.CancelScope() as cancel_scope:
            guarded = self._guard.watch(cancel_scope)

            async def timed_send(message: Message) -> None:
                guarded.since = time.monotonic()
                await send(message)
                guarded.since = None

            try:
                await super().__call__(scope, receive, timed_send)
            finally:
                self._guard.forget(guarded)
        if guarded.timed_out:
            key, generation = self._stream or (None, None)
            logger.warning(
                "stream %r (generation %s): the client stopped reading for %s s; "
                "its response (%s) was ended",
                key,
                generation,
                self._guard.timeout_s,
                scope.get("path"),
                extra=about(key, generation) if key is not None else None,
            )


def sse_response(
    subscription: Subscription, config: HubConfig, guard: SendGuard
) -> EventSourceResponse:
    return stream_response(
        _body(subscription, config.retry_ms),
        config,
        guard,
        stream=(subscription.key, subscription.generation),
    )


def stream_response(
    body: AsyncIterator[bytes],
    config: HubConfig,
    guard: SendGuard,
    headers: Mapping[str, str] = SSE_HEADERS,
    *,
    stream: tuple[str, str] | None = None,
) -> EventSourceResponse:
    """An event stream of ready-encoded `body` chunks, with keep-alive comments and the
    hub's send guard; adapters of other wire formats answer with it too."""
    return StreamResponse(
        body,
        guard=guard,
        stream=stream,
        headers=dict(headers),
        ping=config.keepalive_s,
        ping_message_factory=_ping,
        sep="\n",
    )
