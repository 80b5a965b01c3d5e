"""What both adapters share: one upstream stream read to its end, closed on every exit.

The upstream is closed however the iteration ends: exhausted, failed, cancelled (a
cancel from any instance interrupts the producer's task inside an upstream read), or
closed early (`aclose`, `async with`). The close is shielded: a cancelled task would
otherwise abort the close itself and leave the request to the model running, and
billed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeAlias, TypeVar

import anyio

from .._errors import StreamError
from .._events import Event
from .._logs import about
from .._producer import Producer
from .._runner import current_producer

logger = logging.getLogger("fastapi_streamhub")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Item: TypeAlias = str | Event
"""What a `@resumable_stream` generator yields: answer text, or a named event."""

_CLOSE_TIMEOUT_S = 5.0


class UpstreamStream(Protocol[T_co]):
    """An `openai.AsyncStream` or anything like it: async iteration and `close()`."""

    def __aiter__(self) -> AsyncIterator[T_co]:
        """The chunks or events, as the model streams them."""
        ...

    async def close(self) -> None:
        """Close the HTTP response, so the model's server sees the client go."""
        ...


@dataclass
class Outcome:
    """What the model said about its run, for the `done` event's metadata."""

    usage: dict[str, Any] | None = None
    finish_reason: str | None = None

    def metadata(self) -> dict[str, Any]:
        found = {"usage": self.usage, "finish_reason": self.finish_reason}
        return {key: value for key, value in found.items() if value is not None}


Translate: TypeAlias = Callable[[AsyncIterator[T], Outcome], AsyncGenerator[Item, None]]


class ModelEvents(Generic[T]):
    """The items of one model stream, to yield from a `@resumable_stream` generator.

    Iterate it inside `async with`, so that the upstream request is closed at once
    however the generator stops, including when a cancel lands while the hub is
    storing an item (the generator is then suspended at its own `yield`):

        async with chat_completion_events(stream) as events:
            async for item in events:
                yield item

    When the model's stream ends, its usage and finish reason are merged into the
    producer's metadata, which the `done` event carries.
    """

    def __init__(
        self, stream: UpstreamStream[T], translate: Translate[T], producer: Producer | None
    ) -> None:
        self._stream = stream
        self._translate = translate
        self._producer = producer if producer is not None else current_producer()
        self._outcome = Outcome()
        self._items = self._run()

    @property
    def metadata(self) -> dict[str, Any]:
        """`usage` and `finish_reason`, as far as the model has sent them."""
        return self._outcome.metadata()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream; safe to call twice."""
        try:
            await self._items.aclose()
        finally:
            await _close(self._stream)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _log(self, failed: UpstreamError) -> None:
        """The model's own words go to the log only, with the stream they ended."""
        key, generation = self._producer.key, self._producer.generation
        logger.warning(
            "stream %r (generation %s): the model's stream failed (%s): %s",
            key,
            generation,
            failed.code or "no code",
            failed.detail,
            extra=about(key, generation),
        )

    async def _run(self) -> AsyncGenerator[Item, None]:
        from openai import APIError

        try:
            async with aclosing(self._translate(aiter(self._stream), self._outcome)) as items:
                async for item in items:
                    yield item
        except APIError as exc:
            failed = upstream_error(exc.message, getattr(exc, "code", None))
            self._log(failed)
            raise failed from exc
        except UpstreamError as exc:
            self._log(exc)
            raise
        finally:
            await _close(self._stream)
        if self._outcome.metadata():
            await self._producer.set_metadata(self._outcome.metadata())


async def _close(stream: UpstreamStream[Any]) -> None:
    with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
        await stream.close()


class UpstreamError(StreamError):
    """The model's stream failed: a message safe to show to the client, and the
    upstream's own `detail` and `code`, for the log only."""

    def __init__(self, message: str, detail: str | None, code: str | None) -> None:
        super().__init__(message)
        self.detail = detail
        self.code = code


def upstream_error(detail: str | None, code: str | None) -> UpstreamError:
    """The model failed: its detail is kept for the log (`ModelEvents` writes it, naming
    the stream), a message safe to show goes to the client.

    The upstream's own message may name the account, the key or the prompt; its code
    (`server_error`, `rate_limit_exceeded`, ...) is a fixed word and says enough.
    """
    suffix = f" ({code})" if code and code.replace("_", "").isalnum() else ""
    return UpstreamError(f"The model's stream failed{suffix}.", detail, code)


def tool_arguments(text: str) -> Any:
    """The arguments as JSON, or the raw text when the model produced invalid JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text
