"""The producer side of one generation: buffer, batch, persist, fence.

`publish` never waits for storage while the buffer has room: it buffers and wakes
the process's writer (`_writer.py`), which stores what was buffered while its
previous write was in flight. A write refused because the generation is no
longer current (or has been cancelled) stops the producer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import BackendUnavailableError, ProducerStoppedError, StaleGenerationError
from ._events import (
    StreamEvent,
    UnsupportedChunkError,
    encode_chunk,
    metadata_json,
    terminal_data,
)
from ._fanout import Fanout, Tick
from ._writer import Writer
from .backends._base import Append, Backend, Control, EventBatch, Notification, WriteOutcome

logger = logging.getLogger("fastapi_streamhub")

StopReason = Literal["done", "error", "cancelled", "stale", "unavailable"]


def _wake(waiters: anyio.Event | None) -> None:
    """Wake whoever waits on a lazily created event (created only when someone waits)."""
    if waiters is not None:
        waiters.set()


def _utf8_size(data: str) -> int:
    try:
        return len(data.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise UnsupportedChunkError(
            f"cannot stream text that is not valid Unicode: {exc}"
        ) from None


class Producer:
    """Writes one generation of one key. Obtain it from `StreamHub.register`."""

    def __init__(
        self,
        *,
        key: str,
        generation: str,
        backend: Backend,
        writer: Writer,
        fanout: Fanout,
        config: HubConfig,
        on_finished: Callable[[Producer], Awaitable[None]],
    ) -> None:
        self.key = key
        self.generation = generation
        self._backend = backend
        self._writer = writer
        self._fanout = fanout
        self._config = config
        self._on_finished = on_finished
        self._seq = 0
        self._stored_seq = 0
        self._stored: anyio.Event | None = None
        self._bytes = 0
        self._pending: list[StreamEvent] = []
        self._metadata: dict[str, Any] = {}
        self._metadata_dirty = False
        self._closing = False
        self._stop_reason: StopReason | None = None
        self._unavailable_since: float | None = None
        self._wound_up = False
        self._room: anyio.Event | None = None
        self._finished = anyio.Event()
        self._interrupt: Callable[[], None] | None = None

    @property
    def seq(self) -> int:
        """The seq of the last event published (stored or still buffered)."""
        return self._seq

    @property
    def stop_reason(self) -> StopReason | None:
        """None while running; then why it ended."""
        return self._stop_reason

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    async def wait(self) -> StopReason:
        """Wait until the producer has stopped and its last write has settled."""
        await self._finished.wait()
        return self._stop_reason or "error"

    def _check_open(self) -> None:
        if self._stop_reason == "stale":
            raise StaleGenerationError(self.key)
        if self._stop_reason is not None or self._closing:
            raise ProducerStoppedError(self.key, self._stop_reason or "closed")

    async def publish(self, chunk: object) -> None:
        """Append one chunk: a `str`, a JSON-serialisable value, or an `Event`.

        Raises:
            ProducerStoppedError: the stream has ended (cancelled, fenced, closed, or
                it reached a size limit, in which case it ends with an `error`).
            UnsupportedChunkError: `chunk` cannot be encoded as JSON.
        """
        self._check_open()
        name, data = encode_chunk(chunk)
        size = len(data) if data.isascii() else _utf8_size(data)
        limit = self._limit_exceeded(size)
        if limit is not None:
            logger.warning("stream %r: %s", self.key, limit)
            await self.fail(limit, reason="limit")
            raise ProducerStoppedError(self.key, limit)
        self._bytes += size
        self._enqueue(name, data)
        pending = len(self._pending)
        if pending % self._config.max_batch == 0 or pending >= self._config.max_pending:
            await self._make_room()

    async def _make_room(self) -> None:
        """Let the writer (and readers) run, and hold the generator while the buffer is full."""
        await anyio.lowlevel.checkpoint()
        while len(self._pending) >= self._config.max_pending and self._stop_reason is None:
            self._room = self._room or anyio.Event()
            await self._room.wait()
        self._check_open()

    def _limit_exceeded(self, size: int) -> str | None:
        config = self._config
        if size > config.max_event_bytes:
            return f"An event was larger than {config.max_event_bytes} bytes."
        if self._seq + 2 > config.max_events:
            return f"The stream reached its limit of {config.max_events} events."
        if self._bytes + size > config.max_bytes:
            return f"The stream reached its limit of {config.max_bytes} bytes."
        return None

    def _enqueue(self, name: str | None, data: str) -> None:
        self._seq += 1
        self._pending.append(StreamEvent(self.generation, self._seq, name, data))
        self._writer.wake(self)

    async def flush(self) -> None:
        """Wait until everything published so far is stored (or the producer stopped)."""
        target = self._seq
        while self._stored_seq < target and not self._finished.is_set():
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
        """End the stream with `done` (carrying the metadata) once all is stored."""
        if not self._closing and self._stop_reason is None:
            self._closing = True
            self._enqueue("done", metadata_json(self._metadata))
        return await self.wait()

    async def fail(self, message: str, *, reason: str = "failed") -> StopReason:
        """End the stream with an `error` event; `message` is shown to clients."""
        if not self._closing and self._stop_reason is None:
            self._closing = True
            self._enqueue("error", terminal_data(message=message, reason=reason))
        return await self.wait()

    async def run_task(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run the code that feeds this producer, interruptible by cancel, fencing or shutdown."""
        with anyio.CancelScope() as scope:
            self._interrupt = scope.cancel
            if self._stop_reason is not None:
                scope.cancel()
            try:
                await run()
            finally:
                self._interrupt = None

    def interrupt(self) -> None:
        """Stop the task feeding this producer (its generator's `finally` runs)."""
        if self._interrupt is not None:
            self._interrupt()

    def on_control(self, note: Notification | Tick | None) -> None:
        if (
            isinstance(note, Control)
            and note.kind == "cancel"
            and note.generation == self.generation
        ):
            self._stop("cancelled")

    def _stop(self, reason: StopReason) -> None:
        """Stopped from outside (cancel, fencing, storage) the feeding task is interrupted;
        after its own `close` or `fail` it has nothing left to do but wait, so it is not
        (a cancellation costs a task repr and a raised exception per stream)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        _wake(self._room)
        self._room = None
        self._writer.wake(self)
        if self._interrupt is not None and not self._closing:
            self._interrupt()

    @property
    def has_work(self) -> bool:
        return bool(self._pending) or self._metadata_dirty or self._stop_reason is not None

    def take_write(self) -> Append | None:
        """The next write for the writer: buffered events (up to `max_batch`), metadata."""
        if not self._pending and not self._metadata_dirty:
            return None
        limit = self._config.max_batch
        if len(self._pending) <= limit:
            batch, self._pending = self._pending, []
        else:
            batch, self._pending = self._pending[:limit], self._pending[limit:]
        metadata = None
        if self._metadata_dirty:
            metadata = metadata_json(self._metadata)
            self._metadata_dirty = False
        _wake(self._room)
        self._room = None
        return Append(self.key, self.generation, batch, metadata)

    def written(self, write: Append, outcome: WriteOutcome) -> None:
        """A write was answered: deliver what is stored, or stop if it was refused."""
        self._unavailable_since = None
        if outcome != "ok":
            self._stop("stale" if outcome == "stale" else outcome)
            return
        if write.events:
            self._fanout.deliver_local(self.key, self.generation, EventBatch(write.events))
            self._stored_seq = write.events[-1].seq
            _wake(self._stored)
            self._stored = None
            if write.events[-1].terminal:
                self._stop(write.events[-1].event)  # type: ignore[arg-type]

    def write_failed(self, write: Append, error: BackendUnavailableError) -> None:
        """Storage is away: keep the write for a retry, or give up past the deadline."""
        self._pending[:0] = write.events
        self._metadata_dirty = self._metadata_dirty or write.metadata is not None
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
            logger.warning("stream %r: storage unavailable, retrying: %s", self.key, error)
        elif now - self._unavailable_since >= self._config.write_deadline_s:
            self._give_up()

    async def wind_up(self) -> None:
        """After the producer stopped: record it in storage and release everyone waiting."""
        if self._wound_up:
            return
        self._wound_up = True
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._config.cancel_wait_s):
                await self._release()
        finally:
            self._fanout.close_local(self.key, self.generation)
            self._finished.set()
            _wake(self._stored)
            self._stored = None
            await self._on_finished(self)

    def lease_renewed(self, outcome: WriteOutcome) -> None:
        """A refused renewal stops the producer (fenced out, or ended elsewhere)."""
        if outcome != "ok":
            self._stop("stale" if outcome == "stale" else outcome)

    def _give_up(self) -> None:
        """Storage stayed away past the deadline: stop, and tell local subscribers."""
        logger.error(
            "stream %r: storage unavailable for %.1fs, cancelling the producer",
            self.key,
            self._config.write_deadline_s,
        )
        self._stop("unavailable")
        self._fanout.dispatch_local_error(self.key, self.generation)

    async def _release(self) -> None:
        try:
            await self._backend.release(self.key, generation=self.generation)
        except BackendUnavailableError:
            logger.warning("stream %r: could not record that its producer stopped", self.key)
