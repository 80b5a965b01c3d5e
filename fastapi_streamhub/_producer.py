"""The producer side of one generation: buffer, batch, persist, fence.

`publish` never waits for storage while the buffer has room: it buffers and wakes
the process's writer (`_writer.py`), which stores what was buffered while its
previous write was in flight. A write refused because the generation is no
longer current (or has ended) stops the producer; one refused for now is retried
until `write_deadline_s`. A producer that cannot store its own terminal event (a
final refusal, storage away, a lost tail it cannot write again) has one stored for
it, or tells its readers directly when storage takes nothing.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import anyio.lowlevel

from ._buffer import EventBuffer
from ._config import HubConfig
from ._errors import BackendUnavailableError, ProducerStoppedError, StaleGenerationError
from ._events import StreamEvent, UnsupportedChunkError, encode_chunk, metadata_json, terminal_data
from ._fanout import Fanout, Signal
from ._writer import Writer
from .backends._base import Append, AppendOutcome, Backend, Control, EventBatch, Gap, StorageHint

logger = logging.getLogger("fastapi_streamhub")

StopReason = Literal["done", "error", "cancelled", "stale", "unavailable", "failed"]

_UNSTORED_ENDS: dict[str, tuple[str, str]] = {
    "unavailable": ("unavailable", "The stream's storage is unavailable."),
    "failed": ("failed", "The stream could not be stored."),
}
_TAIL_LOST = ("storage_lost", "The storage lost part of the stream.")


class ProducerPhase(enum.Enum):
    """Where a producer is in its life."""

    RUNNING = "running"
    """Publishing."""
    CLOSING = "closing"
    """Its terminal event is buffered; nothing more may be published."""
    STOPPED = "stopped"
    """Ended (`stop_reason` says why)."""
    FINISHING = "finishing"
    """Recording the end in storage."""
    FINISHED = "finished"
    """Everything settled; `wait()` returns."""


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
        on_hint: Callable[[Producer], None],
    ) -> None:
        self.key = key
        """The stream key."""
        self.generation = generation
        """The generation id this producer writes; every event id starts with it."""
        self._backend = backend
        self._writer = writer
        self._fanout = fanout
        self._config = config
        self._on_finished = on_finished
        self._on_hint = on_hint
        self._phase = ProducerPhase.RUNNING
        self._stop_reason: StopReason | None = None
        self._seq = 0
        self._bytes = 0
        self._buffer = EventBuffer(tail=config.failover_tail_events)
        self._stored: anyio.Event | None = None
        self._metadata: dict[str, Any] = {}
        self._metadata_dirty = False
        self._unstored_end: tuple[str, str] | None = None
        self._unavailable_since: float | None = None
        self._room: anyio.Event | None = None
        self._finished = anyio.Event()
        self._interrupt: Callable[[], None] | None = None

    @property
    def phase(self) -> ProducerPhase:
        return self._phase

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
                it reached a size limit, in which case it ends with an `error`).
            UnsupportedChunkError: `chunk` cannot be encoded as JSON.
        """
        self._check_open()
        name, data = encode_chunk(chunk)
        size = len(data) if data.isascii() else _utf8_size(data)
        limit = self._limit_exceeded(size)
        if limit is not None:
            logger.warning("stream %r (generation %s): %s", self.key, self.generation, limit)
            await self.fail(limit, reason="limit")
            raise ProducerStoppedError(self.key, limit)
        self._bytes += size
        self._enqueue(name, data)
        pending = len(self._buffer.pending)
        if pending % self._config.max_batch == 0 or pending >= self._config.max_pending:
            await self._make_room()

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
        if self._seq + 2 > config.max_events:
            return f"The stream reached its limit of {config.max_events} events."
        if self._bytes + size > config.max_bytes:
            return f"The stream reached its limit of {config.max_bytes} bytes."
        return None

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
        """End the stream with `done` (carrying the metadata) once all is stored."""
        if self._phase is ProducerPhase.RUNNING:
            self._phase = ProducerPhase.CLOSING
            self._enqueue("done", metadata_json(self._metadata))
        return await self.wait()

    async def fail(self, message: str, *, reason: str = "failed") -> StopReason:
        """End the stream with an `error` event; `message` is shown to clients."""
        if self._phase is ProducerPhase.RUNNING:
            self._phase = ProducerPhase.CLOSING
            self._enqueue("error", terminal_data(message=message, reason=reason))
        return await self.wait()

    async def _run_task(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run the code that feeds this producer, interruptible by cancel, fencing or shutdown."""
        with anyio.CancelScope() as scope:
            self._interrupt = scope.cancel
            if self._stop_reason is not None:
                scope.cancel()
            try:
                await run()
            finally:
                self._interrupt = None

    def _interrupt_feeder(self) -> None:
        """Stop the task feeding this producer (its generator's `finally` runs)."""
        if self._interrupt is not None:
            self._interrupt()

    def _on_control(self, signal: Signal) -> None:
        if isinstance(signal, Control):
            if signal.kind == "cancel" and signal.generation == self.generation:
                self._stop("cancelled")
        elif isinstance(signal, StorageHint):
            self._on_hint(self)

    def _stop(self, reason: StopReason) -> None:
        """Stopped from outside (cancel, fencing, storage) the feeding task is interrupted;
        after its own `close` or `fail` it has nothing left to do but wait, so it is not
        (a cancellation costs a task repr and a raised exception per stream)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        closing = self._phase is ProducerPhase.CLOSING
        if self._phase in (ProducerPhase.RUNNING, ProducerPhase.CLOSING):
            self._phase = ProducerPhase.STOPPED
        _wake(self._room)
        self._room = None
        self._writer.wake(self)
        if self._interrupt is not None and not closing:
            self._interrupt()

    @property
    def _has_work(self) -> bool:
        return bool(self._buffer.pending) or self._metadata_dirty or self._stop_reason is not None

    def _take_write(self, max_events: int, max_chars: int) -> Append | None:
        """The next write for the writer: buffered events within the bounds, metadata."""
        if not self._buffer.pending and not self._metadata_dirty:
            return None
        batch = self._buffer.take(min(max_events, self._config.max_batch), max_chars)
        metadata = None
        if self._metadata_dirty:
            metadata = metadata_json(self._metadata)
            self._metadata_dirty = False
        _wake(self._room)
        self._room = None
        return Append(self.key, self.generation, batch, metadata)

    def _written(self, write: Append, outcome: AppendOutcome) -> None:
        """A write was answered: deliver what is stored, retry, rewrite, or stop."""
        if outcome == "ok":
            self._unavailable_since = None
            if write.events:
                self._deliver(write)
        elif outcome == "unavailable":
            self._write_failed(write, BackendUnavailableError("storage refused the write for now"))
        elif isinstance(outcome, Gap):
            self._rewrite(write, outcome.last_seq)
        else:
            if outcome == "failed":
                self._unstored_end = _UNSTORED_ENDS["failed"]
            self._stop(outcome)

    def _deliver(self, write: Append) -> None:
        events = write.events
        self._fanout.deliver_local(self.key, self.generation, EventBatch(events))
        self._buffer.stored(events)
        _wake(self._stored)
        self._stored = None
        if events[-1].terminal:
            self._stop(events[-1].event)  # type: ignore[arg-type]

    def _rewrite(self, write: Append, last_seq: int) -> None:
        """A failover lost the stored tail after `last_seq`: write it again, or end."""
        self._metadata_dirty = self._metadata_dirty or write.metadata is not None
        if self._buffer.rewrite_after(last_seq, write.events):
            logger.warning(
                "stream %r (generation %s): storage lost events after %d (a failover); "
                "writing them again",
                self.key,
                self.generation,
                last_seq,
            )
            return
        logger.error(
            "stream %r (generation %s): storage lost events after %d, more than the %d kept",
            self.key,
            self.generation,
            last_seq,
            self._config.failover_tail_events,
        )
        self._unstored_end = _TAIL_LOST
        self._stop("failed")

    def _write_failed(self, write: Append, error: BackendUnavailableError) -> None:
        """Storage is away: keep the write for a retry, or give up past the deadline."""
        self._buffer.put_back(write.events)
        self._metadata_dirty = self._metadata_dirty or write.metadata is not None
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
            logger.warning(
                "stream %r (generation %s): storage unavailable, retrying: %s",
                self.key,
                self.generation,
                error,
            )
        elif now - self._unavailable_since >= self._config.write_deadline_s:
            logger.error(
                "stream %r (generation %s): storage unavailable for %.1fs, ending the stream",
                self.key,
                self.generation,
                self._config.write_deadline_s,
            )
            self._unstored_end = _UNSTORED_ENDS["unavailable"]
            self._stop("unavailable")

    def _lease_renewed(self, outcome: str) -> None:
        """A refused renewal stops the producer (fenced out, or ended elsewhere)."""
        if outcome in ("stale", "done", "error", "cancelled"):
            self._stop(outcome)  # type: ignore[arg-type]

    async def _wind_up(self) -> None:
        """After the producer stopped: record it in storage and release everyone waiting."""
        if self._phase is not ProducerPhase.STOPPED:
            return
        self._phase = ProducerPhase.FINISHING
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._config.cancel_wait_s):
                if self._unstored_end is not None:
                    await self._store_end(*self._unstored_end)
                await self._release()
        finally:
            self._phase = ProducerPhase.FINISHED
            self._fanout.close_local(self.key, self.generation)
            self._finished.set()
            _wake(self._stored)
            self._stored = None
            await self._on_finished(self)

    async def _store_end(self, reason: str, message: str) -> None:
        """The producer could not store its own terminal event: store one for it, or, when
        storage takes nothing, tell the readers of this process directly."""
        try:
            await self._backend.finish(
                self.key,
                generation=self.generation,
                event="error",
                data=terminal_data(message=message, reason=reason),
                retention_ms=self._config.retention_ms,
                only_if_lapsed=False,
            )
        except Exception as exc:
            logger.warning("stream %r: its end could not be stored: %s", self.key, exc)
            self._fanout.dispatch_local_error(self.key, self.generation)

    async def _release(self) -> None:
        try:
            await self._backend.release(self.key, generation=self.generation)
        except Exception as exc:
            logger.warning(
                "stream %r: could not record that its producer stopped: %s", self.key, exc
            )
