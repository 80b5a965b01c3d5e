"""The seam between a stream route and the format it speaks on the wire.

The library's own SSE format (`NATIVE`) is what `@resumable_stream` speaks. An adapter
brings another one (the Vercel AI SDK's UI message stream, `fastapi_streamhub.ai_sdk`)
and reuses everything else: the claim, the producer task, the mounted routes, their
guards and their OpenAPI entries. The core defines this seam and never imports an
adapter.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from ._cursor import Cursor
from ._dependency import get_hub
from ._sse import sse_response

if TYPE_CHECKING:
    from ._hub import StreamHub
    from ._subscription import Subscription


class Wire(Protocol):
    """What a stream route's format decides; everything else is the library's."""

    @property
    def body_fields(self) -> tuple[str, ...]:
        """Key template fields read from the start request's body; the mounted routes take
        them as path segments under the route (`{path}/{id}/stream`)."""
        ...

    @property
    def resume_description(self) -> str:
        """The resume route's description in OpenAPI."""
        ...

    @property
    def no_content(self) -> str:
        """When the resume route answers `204`, for OpenAPI."""
        ...

    def key_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The values the key template is formatted from, out of the endpoint's arguments."""
        ...

    def generator(
        self, function: Callable[..., Any], params: dict[str, Any]
    ) -> AsyncGenerator[object, None]:
        """The generator the hub runs as the new generation's producer."""
        ...

    def respond(self, subscription: Subscription, hub: StreamHub) -> Response:
        """The streamed answer of the start route (the subscription reads from seq 1)."""
        ...

    async def resume(self, request: Request, key: str, cursor: str | None) -> Response:
        """The resume route's answer; `cursor` is the raw cursor text, if any."""
        ...


class NativeWire:
    """The library's format: see docs/wire-protocol.md."""

    body_fields: tuple[str, ...] = ()
    resume_description = (
        "Replays the events after the cursor (`Last-Event-ID` header or `last_event_id` "
        "query), then follows live. 204 once the stream has ended and the cursor is its "
        "terminal event."
    )
    no_content = "Finished, and the cursor is its terminal event"

    def key_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    def generator(
        self, function: Callable[..., Any], params: dict[str, Any]
    ) -> AsyncGenerator[object, None]:
        generator: AsyncGenerator[object, None] = function(**params)
        return generator

    def respond(self, subscription: Subscription, hub: StreamHub) -> Response:
        return sse_response(subscription, hub.config, hub.send_guard)

    async def resume(self, request: Request, key: str, cursor: str | None) -> Response:
        hub = get_hub(request)
        after = None if cursor is None else Cursor.parse(cursor)
        subscription = await hub.subscribe(key, after=after).open()
        if subscription.exhausted:
            return Response(status_code=204)
        return sse_response(subscription, hub.config, hub.send_guard)


NATIVE: Wire = NativeWire()
"""The library's own format, spoken by `@resumable_stream`."""
