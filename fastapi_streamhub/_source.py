"""`Source`: one more writer of a running generation, in this process.

What it publishes is attributed to it (see `_sources.py` for the envelope), in the one
order of the generation. Ending it ends only it: the generation ends once every source
has ended (or with its first source, when `producer.ends_with == "first"`).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from ._events import terminal_data
from ._feed import end_on_exit

if TYPE_CHECKING:
    from ._producer import Producer


class Source:
    """A source of a running generation: obtain it from `Producer.source` or
    `Producer.spawn`. Use it as `async with producer.source("search") as search:`,
    which ends it with `done` on the way out, or with `error` when the block raises
    (a `StreamError` with its message, anything else with a generic one)."""

    def __init__(self, producer: Producer, name: str) -> None:
        self._producer = producer
        self._name = name

    @property
    def name(self) -> str:
        """The source's name, carried by each of its events."""
        return self._name

    @property
    def key(self) -> str:
        """The stream key of its generation."""
        return self._producer.key

    @property
    def generation(self) -> str:
        """The generation this source writes."""
        return self._producer.generation

    @property
    def running(self) -> bool:
        """True until the source (or its generation) has ended."""
        return self._producer._source_running(self._name)

    async def publish(self, chunk: object) -> None:
        """Append one chunk (as `Producer.publish`), attributed to this source.

        Raises:
            ProducerStoppedError: this source or its generation has ended.
            UnsupportedChunkError: `chunk` cannot be encoded as JSON.
        """
        await self._producer._publish_from(self._name, chunk)

    async def close(self) -> None:
        """End this source with `done`; safe to call twice."""
        self._producer._end_source(self._name, "done", "{}")

    async def fail(self, message: str, *, reason: str = "failed") -> None:
        """End this source with `error`; `message` is shown to clients."""
        self._producer._end_source(
            self._name, "error", terminal_data(message=message, reason=reason)
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not await end_on_exit(self, exc):
            self._producer._end_source(self._name, "cancelled", terminal_data(reason="cancelled"))
