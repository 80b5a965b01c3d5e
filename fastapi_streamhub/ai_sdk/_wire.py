"""What an `@ai_sdk_stream` route does differently from `@resumable_stream`.

- The key's `{id}` is the chat id from the body, and the mounted routes take it from the
  path, where `useChat` puts it: `GET {path}/{id}/stream`.
- The generation's first event is `message_start`, which stores the message id, so the
  `start` part is the same on every replay and `useChat` replaces its copy of the message
  instead of adding a second one.
- Resume without a cursor (what `useChat({resume: true})` sends) replays the running
  generation from its `start`, and answers `204` when none runs. With a cursor (a page
  that tracks the SSE ids and sends one through `prepareReconnectToStreamRequest`) it
  sends what follows it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._cursor import Cursor
from .._dependency import get_hub
from .._events import Event
from .._runner import current_producer
from .._status import StreamStatus
from ._models import ChatRequest
from ._response import ui_message_stream_response

if TYPE_CHECKING:
    from .._hub import StreamHub
    from .._subscription import Subscription

MESSAGE_START = "message_start"

_message_id: ContextVar[str] = ContextVar("streamhub_ai_sdk_message_id")


def current_message_id() -> str:
    """The id of the assistant message the running `@ai_sdk_stream` generator writes.

    The `start` part gives `useChat` this id; store the finished answer under it, and
    the page that loads the chat later has the message `useChat` showed.

    Raises:
        LookupError: called outside such a generator.
    """
    try:
        return _message_id.get()
    except LookupError:
        raise LookupError(
            "current_message_id() is only available inside an @ai_sdk_stream generator"
        ) from None


@dataclass(frozen=True)
class AiSdkWire:
    """The AI SDK's UI message stream, for a route whose body is `body_param`."""

    body_param: str
    body_fields: tuple[str, ...] = ("id",)
    resume_description: str = (
        "The running generation as a UI message stream (`useChat({resume: true})` asks "
        "for it when a page opens): from its `start` without a cursor, or after the "
        "cursor (`Last-Event-ID` header or `last_event_id` query). 204 when no "
        "generation runs."
    )
    no_content: str = (
        "No generation runs (none started, finished or stopped), or the cursor is the "
        "end of a finished one"
    )

    def key_params(self, params: dict[str, Any]) -> dict[str, Any]:
        body: ChatRequest = params[self.body_param]
        return {**params, "id": body.id}

    def generator(
        self, function: Callable[..., Any], params: dict[str, Any]
    ) -> AsyncGenerator[object, None]:
        body: ChatRequest = params[self.body_param]
        return _answer(body.continued_message, function(**params))

    def respond(self, subscription: Subscription, hub: StreamHub) -> Response:
        return ui_message_stream_response(subscription, hub)

    async def resume(self, request: Request, key: str, cursor: str | None) -> Response:
        hub = get_hub(request)
        seen = None if cursor is None else Cursor.parse(cursor)
        status = await hub.status(key)
        if status is None or _nothing_to_send(status, seen):
            return Response(status_code=204)
        if seen is not None and (
            seen.generation != status.generation or seen.seq > status.last_seq
        ):
            seen = None  # another generation, or a tail storage lost: all of this one
        subscription = await hub.subscribe(key, after=Cursor(status.generation, 0)).open()
        return ui_message_stream_response(subscription, hub, seen=seen)


def _nothing_to_send(status: StreamStatus, seen: Cursor | None) -> bool:
    """No cursor: nothing unless a generation runs. A cursor: nothing once it is the end
    of the current generation, which has finished."""
    if seen is None:
        return status.status != "active"
    return (
        status.status != "active"
        and seen.generation == status.generation
        and seen.seq == status.last_seq
    )


async def _answer(
    continued: str | None, answer: AsyncGenerator[object, None]
) -> AsyncGenerator[object, None]:
    """`message_start`, then what the endpoint yields.

    The message id is that of the assistant message the request continues (after
    client-side tool results), else the generation's id.
    """
    message_id = continued or current_producer().generation
    _message_id.set(message_id)
    yield Event(MESSAGE_START, {"message_id": message_id})
    async with aclosing(answer) as items:
        async for item in items:
            yield item
