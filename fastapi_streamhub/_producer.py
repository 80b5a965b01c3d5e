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
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.lowlevel

from ._errors import ProducerStoppedError, StaleGenerationError
from ._events import (
    MAIN_SOURCE,
    SOURCE_EVENT,
    TERMINAL_EVENTS,
    StreamEvent,
    UnsupportedChunkError,
    encode_chunk,
    metadata_json,
    terminal_data,
)
from ._fanout import Signal
from ._feed import feed
from ._inbox import InboxMessage
from ._join_owner import JoinedSources
from ._producer_core import ProducerCore, ProducerPhase, StopReason
from ._source import Source
from ._sources import EndsWith, Sources, validate_ends_with, validate_source
from .backends._base import Control, StorageHint

logger = logging.getLogger("fastapi_streamhub")

__all__ = ["CURRENT", "Producer", "ProducerPhase", "StopReason"]

CURRENT: ContextVar[Producer] = ContextVar("streamhub_producer")
"""The producer fed by the running generator, or by one of its sources' tasks."""


def _utf8_size(data: str) -> int:
    try:
        return len(data.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UnsupportedChunkError(
            f"cannot stream text that is not valid Unicode: {exc}"
        ) from None


class Producer(ProducerCore):
    """Writes one generation of one key. Obtain it from `StreamHub.register`."""

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

    def _check_open(self) -> None:
        if self._stop_reason == "stale":
            raise StaleGenerationError(self.key)
        if self._phase is not ProducerPhase.RUNNING:
            raise ProducerStoppedError(self.key, self._stop_reason or "closed")

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
            await self._fail_generation(limit)
            raise ProducerStoppedError(self.key, limit)
        self._bytes += size
        self._enqueue(name, data)
        pending = len(self._buffer.pending)
        if pending % self._config.max_batch == 0 or pending >= self._config.max_pending:
            await self._make_room()

    async def _fail_generation(self, limit: str) -> None:
        logger.warning("stream %r (generation %s): %s", self.key, self.generation, limit)
        await self._fail_all(limit, reason="limit")

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

    def _limit_exceeded(self, size: int) -> str | None:
        config = self._config
        if size > config.max_event_bytes:
            return f"An event was larger than {config.max_event_bytes} bytes."
        if self._seq + 1 + self._ends_owed() > config.max_events:
            return f"The stream reached its limit of {config.max_events} events."
        if self._bytes + size > config.max_bytes:
            return f"The stream reached its limit of {config.max_bytes} bytes."
        return None

    def _ends_owed(self) -> int:
        """Terminal events still to come: one per running source, and the generation's."""
        return 1 if self._sources is None else len(self._sources) + 1

    def _enqueue(self, name: str | None, data: str) -> None:
        self._seq += 1
        self._buffer.pending.append(StreamEvent(self.generation, self._seq, name, data))
        self._writer.wake(self)

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

    def _end_generation(self, event: str, data: str) -> None:
        """Buffer the generation's terminal event: nothing more may be published."""
        if self._phase is ProducerPhase.RUNNING:
            self._phase = ProducerPhase.CLOSING
            self._enqueue(event, data)

    @property
    def ends_with(self) -> EndsWith:
        """When a generation with several sources ends: once every source has ended
        (`"all"`, the default), or with its first source, which ends the others as
        `cancelled` (`"first"`)."""
        return self._ends_with

    @ends_with.setter
    def ends_with(self, value: EndsWith) -> None:
        self._ends_with = validate_ends_with(value)
        if self._sources is not None:
            self._sources.ends_with = self._ends_with

    @property
    def sources(self) -> list[str]:
        """The running sources of this generation, the first (`"main"`) included."""
        if self._sources is None:
            return [MAIN_SOURCE] if self._phase is ProducerPhase.RUNNING else []
        return list(self._sources)

    @property
    def ended_sources(self) -> list[str]:
        """The sources of this generation that have ended, in the order they did."""
        return [] if self._sources is None else list(self._sources.ended)

    def source(self, name: str) -> Source:
        """Start another source of this generation, named `name`, written by the caller:
        `async with producer.source("search") as search: await search.publish(...)`.

        Raises:
            ProducerStoppedError: the generation has ended (or reached its event limit).
            ValueError: `name` is not 1 to 100 printable characters, or is taken.
        """
        self._add_source(name)
        return Source(self, name)

    def _add_source(self, name: str) -> Sources:
        validate_source(name)
        self._check_open()
        sources = self._sources
        if sources is None:
            sources = self._sources = Sources(self._ends_with)
        if self._seq + 2 + self._ends_owed() > self._config.max_events:
            limit = f"The stream reached its limit of {self._config.max_events} events."
            self._end_generation("error", terminal_data(message=limit, reason="limit"))
            raise ProducerStoppedError(self.key, limit)
        sources.add(name)
        return sources

    def spawn(self, name: str, stream: AsyncIterator[object]) -> Source:
        """Run `stream` (an async generator) as another source of this generation, in a
        task of the hub's: what it yields is attributed to `name`, in the one order of
        the generation; it ends as the first source's generator does (`done`, or
        `error`). A cancel of the generation stops it (its `finally` runs).

        Raises:
            ProducerStoppedError: the generation has ended (or reached its event limit).
            ValueError: `name` is not 1 to 100 printable characters, or is taken.
            RuntimeError: this producer was not started by a hub.
        """
        self._add_source(name)
        source = Source(self, name)

        async def run() -> None:
            CURRENT.set(self)
            await feed(source, stream)

        self._start_source_task(name, run)
        return source

    def _start_source_task(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` in a task of the hub's, stopped with the generation's sources."""
        sources, start_task = self._sources, self._start_task
        if sources is None or start_task is None:
            raise RuntimeError("only a producer started by a StreamHub runs source tasks")
        sources.expect_task(name)
        start_task(f"source {name!r} of {self.key!r}", lambda: sources.run_task(name, run))

    def _on_source_message(self, message: InboxMessage) -> None:
        """A joined source's message, from the inbox (`_join_owner.py`)."""
        if self._joined is None:
            self._joined = JoinedSources(self)
        self._joined.on_message(message)

    def _join_source(self, name: str, join_id: str) -> None:
        """Accept another process's join: its `joined` event tells it so."""
        sources = self._add_source(name)
        self._enqueue(SOURCE_EVENT, sources.wrap(name, "joined", terminal_data(id=join_id)))

    def _publish_joined(self, name: str, pairs: list[tuple[str | None, str]]) -> None:
        """Buffer a joined source's events: no waiting (the inbox bounds how many come)."""
        sources = self._sources
        for event, data in pairs:
            if sources is None or not sources.running(name) or event in TERMINAL_EVENTS:
                return
            size = len(data) if data.isascii() else len(data.encode("utf-8", "replace"))
            limit = self._limit_exceeded(size)
            if limit is not None:
                logger.warning("stream %r (generation %s): %s", self.key, self.generation, limit)
                self._end_generation("error", terminal_data(message=limit, reason="limit"))
                return
            self._bytes += size
            self._enqueue(SOURCE_EVENT, sources.wrap(name, event, data))

    def _source_running(self, name: str) -> bool:
        return self._sources is not None and self._sources.running(name)

    def _end_source(self, name: str, event: str, data: str) -> None:
        """Buffer the end of source `name`, then the generation's own when it is due."""
        sources = self._sources
        if self._phase is not ProducerPhase.RUNNING or sources is None or not sources.end(name):
            return
        self._enqueue(SOURCE_EVENT, sources.wrap(name, event, data))
        if name == MAIN_SOURCE and sources.ends_with == "first":
            ended = terminal_data(reason="first_source_ended")
            for other in list(sources):
                sources.end(other)
                self._enqueue(SOURCE_EVENT, sources.wrap(other, "cancelled", ended))
            sources.interrupt()
            if event != "done":
                self._end_generation(event, data)
        if not len(sources):
            self._end_generation("done", metadata_json(self._metadata))

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
