"""A producer's side that faces storage: its state, its writes and their outcomes.

`Producer` (`_producer.py`) is what the generator and the user call; this base holds
what the writer, the lease keeper and the hub call: writes taken and answered,
failovers' lost tails written again, storage refusing for now or for good, and the
wind-up that records the end and releases the key.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio

from ._buffer import EventBuffer
from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._events import metadata_json, terminal_data
from ._fanout import Fanout
from ._inbox import Inbox
from ._logs import about
from ._sources import EndsWith, Sources, StartTask
from ._writer import Writer
from .backends._base import Append, AppendOutcome, Backend, EventBatch, Gap

if TYPE_CHECKING:
    from ._join_owner import JoinedSources
    from ._producer import Producer

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


class ProducerCore:
    """The storage side of a producer; see `Producer` for the rest."""

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
        start_task: StartTask | None = None,
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
        self._feeder_done: anyio.Event | None = None
        self._interrupted = False
        self._ended_here = False
        self._start_task = start_task
        self._sources: Sources | None = None
        self._ends_with: EndsWith = "all"
        self._joined: JoinedSources | None = None
        self.inbox = Inbox(key, generation)
        """Messages posted to this generation, delivered here (`_inbox.py`)."""
        self._open_inbox()

    def _open_inbox(self) -> None:
        """Register the handlers of this generation's inbox messages (`Producer` does)."""

    @property
    def stop_reason(self) -> StopReason | None:
        """None while running; then why it ended."""
        return self._stop_reason

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
        if self._sources is not None:
            self._sources.interrupt()
        if not closing:
            self._interrupt_feeder()

    def _interrupt_feeder(self) -> None:
        """Stop the tasks feeding this producer (their generators' `finally` runs)."""
        if self._sources is not None:
            self._sources.interrupt()
        if self._interrupt is not None:
            self._interrupted = True
            self._interrupt()

    async def _feeder_stopped(self) -> None:
        """An interrupted feeder (and every source's task) finishes its generator's
        `finally` before the producer counts as stopped: whoever waits for "stopped"
        may rely on the cleanup."""
        with anyio.move_on_after(self._config.cancel_wait_s):
            if self._interrupted and self._feeder_done is not None:
                await self._feeder_done.wait()
            if self._sources is not None:
                await self._sources.stopped()

    def _carry(self, values: dict[str, str]) -> None:
        """Add `values` to the metadata from plain (not async) code, such as an observer
        at the start: they go out with the first write, at no cost of their own."""
        self._metadata.update(values)
        self._metadata_dirty = True

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
            self._ended_here = True
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
                extra=about(self.key, self.generation),
            )
            return
        logger.error(
            "stream %r (generation %s): storage lost events after %d, more than the %d kept",
            self.key,
            self.generation,
            last_seq,
            self._config.failover_tail_events,
            extra=about(self.key, self.generation),
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
                extra=about(self.key, self.generation),
            )
        elif now - self._unavailable_since >= self._config.write_deadline_s:
            logger.error(
                "stream %r (generation %s): storage unavailable for %.1fs, ending the stream",
                self.key,
                self.generation,
                self._config.write_deadline_s,
                extra=about(self.key, self.generation),
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
            with anyio.CancelScope(shield=True):
                await self._feeder_stopped()
                with anyio.move_on_after(self._config.cancel_wait_s):
                    if self._unstored_end is not None:
                        await self._store_end(*self._unstored_end)
                    await self._deliver_stored_end()
                    await self._release()
        finally:
            self._phase = ProducerPhase.FINISHED
            self._fanout.close_local(self.key, self.generation)
            self._finished.set()
            _wake(self._stored)
            self._stored = None
            await self._on_finished(cast("Producer", self))

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
            self._log_warning("its end could not be stored: %s", exc)
            self._fanout.dispatch_local_error(self.key, self.generation)

    async def _deliver_stored_end(self) -> None:
        """An end stored by someone else (a cancel, a lapsed lease, `_store_end`) reaches
        this process's readers from storage before the producer counts as finished, so
        a new generation started at once (which replaces this one's events) cannot
        leave them without it."""
        if self._ended_here or self._stop_reason == "stale":
            return
        try:
            page = await self._backend.read(
                self.key,
                generation=self.generation,
                after_seq=self._buffer.stored_seq,
                limit=self._config.replay_batch,
            )
        except Exception as exc:
            self._log_warning("its end could not be read back: %s", exc)
            return
        if page is not None and page.events:
            self._fanout.deliver_local(self.key, self.generation, EventBatch(page.events))

    async def _release(self) -> None:
        try:
            await self._backend.release(self.key, generation=self.generation)
        except Exception as exc:
            self._log_warning("could not record that its producer stopped: %s", exc)

    def _log_warning(self, message: str, *args: object) -> None:
        logger.warning(
            "stream %r (generation %s): " + message,
            self.key,
            self.generation,
            *args,
            extra=about(self.key, self.generation),
        )
