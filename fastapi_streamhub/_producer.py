"""The producer side of one generation: buffer, batch, persist, fence.

`publish` never waits for storage while the buffer has room: it buffers and wakes
the process's writer (`_writer.py`), which stores what was buffered while its
previous write was in flight. A write refused because the generation is no
longer current (or has ended) stops the producer; one refused for now is retried
until `write_deadline_s`. What faces storage is in `_producer_core.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

from ._errors import ProducerStoppedError
from ._events import (
    MAIN_SOURCE,
    SOURCE_EVENT,
    UnsupportedChunkError,
    encode_chunk,
    metadata_json,
    terminal_data,
)
from ._fanout import Signal
from ._inbox import InboxMessage
from ._logs import about
from ._producer_core import ProducerPhase, StopReason
from ._producer_sources import CURRENT, SourcedProducer
from ._steering import STEER, Steering, SteeringMessage, event_data
from .backends._base import Control, StorageHint

logger = logging.getLogger("fastapi_streamhub")

__all__ = ["CURRENT", "Producer", "ProducerPhase", "StopReason"]


def _utf8_size(data: str) -> int:
    try:
        return len(data.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UnsupportedChunkError(
            f"cannot stream text that is not valid Unicode: {exc}"
        ) from None


class Producer(SourcedProducer):
    """Writes one generation of one key. Obtain it from `StreamHub.register`."""

    def _open_inbox(self) -> None:
        self._steering = Steering(self.key, self.generation)
        self.inbox.on(STEER, self._steered)

    @property
    def phase(self) -> ProducerPhase:
        return self._phase

    @property
    def seq(self) -> int:
        """The seq of the last event published (stored or still buffered)."""
        return self._seq

    @property
    def finished(self) -> bool:
        """True once the producer has stopped and its end is recorded."""
        return self._phase is ProducerPhase.FINISHED

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata set so far (sent with `done`)."""
        return dict(self._metadata)

    async def wait(self) -> StopReason:
        """Wait until the producer has stopped and its last write has settled."""
        await self._finished.wait()
        return self._stop_reason or "error"

    def messages(self) -> AsyncIterator[SteeringMessage]:
        """The steering messages sent to this generation, each once, in the order they
        were accepted (those sent before the first look included); waits for the next.
        Ends once the producer has stopped."""
        return self._steering.messages()

    def take_messages(self) -> list[SteeringMessage]:
        """The steering messages arrived since the last look, without waiting: a check
        between two tokens."""
        return self._steering.take()

    def _steered(self, message: InboxMessage) -> None:
        """A steering message arrived: record it as a `steer` event, then hand it to the
        generator. One that comes as the generation ends is too late for both."""
        steering = self._steering.parse(message)
        if steering is None or self._phase is not ProducerPhase.RUNNING:
            return
        data = event_data(message)
        size = _utf8_size(data)
        limit = self._limit_exceeded(size)
        if limit is None:
            self._bytes += size
            self._enqueue(STEER, data)
        else:
            logger.warning(
                "stream %r (generation %s): steer event %s not stored: %s",
                self.key,
                self.generation,
                message.id,
                limit,
                extra=about(self.key, self.generation),
            )
        self._steering.put(steering)
        if (observer := self._config.observer) is not None:
            observer.steer_delivered(self, message.id, message.source)

    def _stop(self, reason: StopReason) -> None:
        super()._stop(reason)
        self._steering.close()
        self._report_sources_left()

    async def publish(self, chunk: object) -> None:
        """Append one chunk: a `str`, a JSON-serialisable value, or an `Event`.

        Raises:
            ProducerStoppedError: the stream has ended (cancelled, fenced, closed, or
                it reached a size limit, in which case it ends with an `error`), or its
                first source did while others go on.
            UnsupportedChunkError: `chunk` cannot be encoded as JSON.
        """
        self._check_open()
        if self._sources is not None and not self._sources.running(MAIN_SOURCE):
            raise ProducerStoppedError(self.key, "its first source has ended")
        name, data = encode_chunk(chunk)
        await self._append(name, data)

    async def _publish_from(self, source: str, chunk: object) -> None:
        """`publish` for a source other than the first: the event goes in its envelope."""
        self._check_open()
        sources = self._sources
        if sources is None or not sources.running(source):
            raise ProducerStoppedError(self.key, f"its source {source!r} has ended")
        name, data = encode_chunk(chunk)
        await self._append(SOURCE_EVENT, sources.wrap(source, name, data))

    async def _append(self, name: str | None, data: str) -> None:
        size = len(data) if data.isascii() else _utf8_size(data)
        limit = self._limit_exceeded(size)
        if limit is not None:
            self._end_over_limit(limit)
            await self.wait()
            raise ProducerStoppedError(self.key, limit)
        self._bytes += size
        self._enqueue(name, data)
        pending = len(self._buffer.pending)
        if pending % self._config.max_batch == 0 or pending >= self._config.max_pending:
            await self._make_room()

    async def _fail_all(self, message: str, *, reason: str) -> StopReason:
        """End the whole generation with `error`, whatever its sources are doing."""
        self._end_generation("error", terminal_data(message=message, reason=reason))
        return await self.wait()

    async def _make_room(self) -> None:
        """Let the writer (and readers) run, and hold the generator while the buffer is full."""
        await anyio.lowlevel.checkpoint()
        while len(self._buffer.pending) >= self._config.max_pending and self._stop_reason is None:
            self._room = self._room or anyio.Event()
            await self._room.wait()
        self._check_open()

    async def flush(self) -> None:
        """Wait until everything published so far is stored (or the producer stopped)."""
        target = self._seq
        while self._buffer.stored_seq < target and not self._finished.is_set():
            self._stored = self._stored or anyio.Event()
            await self._stored.wait()

    async def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Merge `metadata` into the stream's metadata (shown by status, sent with `done`)."""
        self._check_open()
        encoded = metadata_json({**self._metadata, **metadata})
        self._metadata = json.loads(encoded)
        self._metadata_dirty = True
        self._writer.wake(self)

    async def close(self) -> StopReason:
        """End the stream with `done` (carrying the metadata) once all is stored.

        With other sources (`spawn`, `source`), this ends the first source only; the
        generation ends once every source has (`ends_with == "all"`), or now, ending
        the others as `cancelled` (`"first"`). Returns once the generation has ended.
        """
        if self._sources is None:
            self._end_generation("done", metadata_json(self._metadata))
        else:
            self._end_source(MAIN_SOURCE, "done", "{}")
        return await self.wait()

    async def fail(self, message: str, *, reason: str = "failed") -> StopReason:
        """End the stream with an `error` event; `message` is shown to clients.

        With other sources, this ends the first source only, as `close` does."""
        data = terminal_data(message=message, reason=reason)
        if self._sources is None:
            self._end_generation("error", data)
        else:
            self._end_source(MAIN_SOURCE, "error", data)
        return await self.wait()

    async def _run_task(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run the code that feeds this producer, interruptible by cancel, fencing or shutdown."""
        done = self._feeder_done = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._interrupt = scope.cancel
                if self._stop_reason is not None:
                    scope.cancel()
                try:
                    await run()
                finally:
                    self._interrupt = None
        finally:
            done.set()

    def _on_control(self, signal: Signal) -> None:
        if isinstance(signal, Control):
            if signal.generation != self.generation:
                return
            if signal.kind == "cancel":
                self._stop("cancelled")
            elif signal.kind == "inbox":
                self.inbox.notify()
        elif isinstance(signal, StorageHint):
            self._on_hint(self)
