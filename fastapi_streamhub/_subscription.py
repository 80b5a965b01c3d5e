"""The reader side: replay from storage, then follow live, never out of order.

The live listener is registered before the first read, so nothing published
during the replay is missed; live events at or below the last delivered seq are
dropped and a gap sends the reader back to storage. While catching up, or before
its reader starts, a full queue costs nothing (storage has it all); once live, a
full queue means the reader is too slow and it is ended with
`SubscriberLaggedError` (it can resume).

Notifications arrive through `_on_signal`, a plain call made by the process's
shared fan-out: it only records what happened and wakes the reader, which does
all the work in its own task.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

import anyio

from ._config import HubConfig
from ._cursor import Cursor
from ._errors import BackendUnavailableError, SessionNotFoundError, SubscriberLaggedError
from ._events import StreamEvent, terminal_data
from ._fanout import Checked, Fanout, Signal
from ._observe import (
    Observer,
    ResumeResult,
    SubscriberState,
    current_resume_source,
    root_error,
)
from ._waiter import Waiter
from .backends._base import Backend, Control, EventBatch, SessionState

logger = logging.getLogger("fastapi_streamhub")

_LOST = ("producer_lost", "The stream's producer was lost.")
_UNAVAILABLE = ("unavailable", "The stream's storage is unavailable.")


class Phase(enum.Enum):
    """Where a subscription is in its life."""

    NEW = "new"
    """Created; the key and cursor are not checked yet."""
    OPEN = "open"
    """Checked; nothing read yet."""
    CATCHING_UP = "catching_up"
    """Reading storage: replaying, or after a gap or lost notifications."""
    LIVE = "live"
    """Following notifications as they come."""
    ENDED = "ended"
    """The terminal event (or an unstored `error`) was delivered: nothing more comes."""
    CLOSED = "closed"
    """Closed by its owner."""


class Subscription:
    """Events of one key after a cursor. Use `async with hub.subscribe(...) as sub`.

    Iterating opens it if it is not open yet.
    """

    def __init__(
        self,
        *,
        key: str,
        after: Cursor | None,
        backend: Backend,
        fanout: Fanout,
        config: HubConfig,
        max_queue: int,
    ) -> None:
        self.key = key
        self._after = after
        self._backend = backend
        self._fanout = fanout
        self._config = config
        self._max_queue = max_queue
        self._phase = Phase.NEW
        self._generation = ""
        self._last = 0
        self._reset = False
        self._queue: list[StreamEvent] = []
        self._lagged = False
        self._ending: tuple[str, str] | None = None
        self._check: Checked | None = None
        self._following = False
        self._wakeup: Waiter | None = None
        self._iterator: AsyncIterator[list[StreamEvent]] | None = None
        self._unavailable_since: float | None = None
        self._reported: SubscriberState | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def exhausted(self) -> bool:
        """True when the cursor is the terminal event of a finished stream: nothing to send."""
        return self._phase is Phase.ENDED and self._iterator is None

    @property
    def generation(self) -> str:
        """The generation this subscription reads (known once it is open)."""
        return self._generation

    async def open(self) -> Subscription:
        """Check the key and the cursor.

        A cursor of another generation gets `reset`, then the current one from its
        start. So does a cursor beyond what storage holds of a generation that has
        ended (a failover lost the tail its client saw); while the generation runs,
        such a cursor waits for its producer to write that far again.

        Raises:
            SessionNotFoundError: no stream under the key (HTTP 404).
            BackendUnavailableError: storage did not answer (HTTP 503).
        """
        if self._phase is not Phase.NEW:
            return self
        (state,) = await self._backend.states([self.key])
        if state is None:
            raise SessionNotFoundError(self.key)
        self._generation = state.generation
        self._phase = Phase.OPEN
        after = self._after
        if after is None:
            self._opened(state)
            return self
        if after.generation != state.generation or (
            after.seq > state.last_seq and state.status != "active"
        ):
            self._reset = True
        else:
            self._last = after.seq
            if state.status != "active" and after.seq == state.last_seq:
                self._phase = Phase.ENDED
        self._opened(state)
        return self

    def _opened(self, state: SessionState) -> None:
        if (observer := self._config.observer) is not None:
            observer.resumed(self, state, current_resume_source(), self._resume_result())

    def _resume_result(self) -> ResumeResult:
        if self._after is None:
            return "from_start"
        if self._reset:
            return "reset"
        return "no_content" if self._phase is Phase.ENDED else "continued"

    def opened_at_start(self, generation: str) -> Subscription:
        """Open without a read, for the caller that has just claimed `generation`.

        Following the local producer before its first write means every event reaches
        this subscription live, so it starts without reading storage at all.
        """
        self._generation = generation
        self._phase = Phase.OPEN
        if self._fanout.follow_local(self.key, generation, self._on_signal):
            self._following = True
            self._phase = Phase.LIVE
        return self

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following; safe to call twice."""
        if self._iterator is not None:
            iterator, self._iterator = self._iterator, None
            await iterator.aclose()  # type: ignore[attr-defined]
        await self._unfollow()
        self._phase = Phase.CLOSED

    async def _unfollow(self) -> None:
        if self._following:
            self._following = False
            await self._fanout.unfollow(self.key, self._generation, self._on_signal)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    def batches(self) -> AsyncIterator[list[StreamEvent]]:
        """Events in batches: a replay page, or what arrived live since the last batch."""
        if self._iterator is None:
            self._iterator = self._batches()
        return self._iterator

    async def _batches(self) -> AsyncIterator[list[StreamEvent]]:
        if self._phase is Phase.CLOSED:
            raise RuntimeError("this subscription is closed")
        await self.open()
        if self._phase is Phase.ENDED:
            return
        observer = self._config.observer
        try:
            if not self._following:
                await self._fanout.follow(self.key, self._generation, self._on_signal)
                self._following = True
            if self._phase is Phase.OPEN:
                self._phase = Phase.CATCHING_UP
            if observer is not None:
                self._report_state(observer)
            if self._reset:
                yield [self._reset_event()]
            while self._phase is not Phase.ENDED:
                batch = await self._next_batch()
                if observer is not None:
                    self._report_state(observer)
                if batch:
                    yield batch
        finally:
            if observer is not None and self._reported is not None:
                observer.subscriber_moved(self, self._reported, None)
            await self._unfollow()

    def _report_state(self, observer: Observer) -> None:
        """Tell the observer when this connected reader switches between reading
        storage and following live (checked once per batch, not per event)."""
        now: SubscriberState = "live" if self._phase is Phase.LIVE else "replaying"
        if now != self._reported:
            observer.subscriber_moved(self, self._reported, now)
            self._reported = now

    def _reset_event(self) -> StreamEvent:
        """`reset`: the events after it are the generation from its start. Sent for a
        cursor of another generation, and for one beyond a stream that ended below it."""
        self._reset = False
        self._last = 0
        return StreamEvent(self._generation, 0, "reset", terminal_data(generation=self._generation))

    def _on_signal(self, signal: Signal) -> None:
        if isinstance(signal, EventBatch):
            self._receive(signal)
        elif isinstance(signal, Checked):
            self._check = signal
        elif isinstance(signal, Control):
            if signal.kind == "lost" and signal.generation == self._generation:
                self._ending = _UNAVAILABLE
        elif self._phase is Phase.LIVE:
            self._phase = Phase.CATCHING_UP
        if self._wakeup is not None:
            self._wakeup.set()

    def _receive(self, batch: EventBatch) -> None:
        if len(self._queue) + len(batch.events) <= self._max_queue:
            self._queue.extend(batch.events)
        elif self._phase is not Phase.LIVE or self._iterator is None:
            self._queue.clear()
            if self._phase is Phase.LIVE:
                self._phase = Phase.CATCHING_UP
        else:
            self._lagged = True

    async def _next_batch(self) -> list[StreamEvent]:
        if not (
            self._queue
            or self._lagged
            or self._ending
            or self._check
            or self._phase is Phase.CATCHING_UP
        ):
            self._wakeup = Waiter()
            await self._wakeup.wait()
            self._wakeup = None
        if self._lagged:
            if (observer := self._config.observer) is not None:
                observer.subscriber_lagged(self)
            raise SubscriberLaggedError(self.key, self._max_queue)
        if self._ending is not None:
            return self._synthetic_end(*self._ending)
        if self._phase is Phase.CATCHING_UP:
            return await self._catch_up()
        if self._queue:
            return self._take_live()
        if self._check is not None:
            checked, self._check = self._check, None
            return self._checked(checked)
        return []

    def _take_live(self) -> list[StreamEvent]:
        """The queued events that continue the stream: repeats are dropped (a retried
        write is notified again), and a gap sends the reader to storage for the rest.
        Events of another generation, or a terminal event at or below the cursor (the
        stream ended below it, after a failover), need a look at storage."""
        queued, self._queue = self._queue, []
        fresh: list[StreamEvent] = []
        expected = self._last + 1
        for event in queued:
            if event.generation != self._generation or event.seq > expected:
                self._phase = Phase.CATCHING_UP
                break
            if event.seq == expected:
                fresh.append(event)
                expected += 1
            elif event.terminal:
                self._phase = Phase.CATCHING_UP
                break
        return self._accept(fresh)

    def _accept(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for index, event in enumerate(events):
            if event.terminal:
                events = events[: index + 1]
                self._phase = Phase.ENDED
                break
        if events:
            self._last = events[-1].seq
        return events

    async def _catch_up(self) -> list[StreamEvent]:
        self._queue = [e for e in self._queue if e.seq > self._last]
        limit = self._config.replay_batch
        try:
            page = await self._backend.read(
                self.key,
                generation=self._generation,
                after_seq=self._last,
                limit=limit,
                max_bytes=self._config.max_replay_bytes,
            )
        except BackendUnavailableError as exc:
            if (observer := self._config.observer) is not None:
                observer.storage_error("read", "transient", root_error(exc))
            return await self._wait_for_backend()
        self._unavailable_since = None
        if page is None:
            return self._queued_end() or await self._generation_gone()
        if page.ended and page.last_seq < self._last:
            return [self._reset_event()]
        if not page.events or page.events[-1].seq >= page.last_seq:
            self._phase = Phase.LIVE
        return self._accept(page.events)

    async def _generation_gone(self) -> list[StreamEvent]:
        """Storage no longer holds this generation. If the stream itself is gone (it
        expired, or was removed, after `open`) and none of it was sent, there is no
        stream, as `open` would have found a moment later; otherwise the reader ends."""
        if self._last == 0 and await self._stream_missing():
            raise SessionNotFoundError(self.key)
        return self._synthetic_end(*_LOST)

    async def _stream_missing(self) -> bool:
        try:
            (state,) = await self._backend.states([self.key])
        except BackendUnavailableError:
            return False
        return state is None

    def _queued_end(self) -> list[StreamEvent]:
        """The generation was replaced in storage: if the queue already holds the rest of
        it up to its terminal event (its producer here delivered it), that is its end."""
        rest: list[StreamEvent] = []
        for event in self._queue:
            if event.generation == self._generation and event.seq == self._last + 1 + len(rest):
                rest.append(event)
                if event.terminal:
                    self._queue = []
                    return self._accept(rest)
        return []

    def _checked(self, checked: Checked) -> list[StreamEvent]:
        """An idle check: anything but "still running, nothing new" is read from storage."""
        if not checked.reachable:
            return self._storage_away()
        self._unavailable_since = None
        state = checked.state
        if (
            state is None
            or state.generation != self._generation
            or state.last_seq != self._last
            or state.status != "active"
        ):
            self._phase = Phase.CATCHING_UP
        return []

    def _storage_away(self) -> list[StreamEvent]:
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        elif now - self._unavailable_since >= self._config.write_deadline_s:
            return self._synthetic_end(*_UNAVAILABLE)
        return []

    async def _wait_for_backend(self) -> list[StreamEvent]:
        ended = self._storage_away()
        if not ended:
            await anyio.sleep(min(self._config.idle_check_s, 0.5))
        return ended

    def _synthetic_end(self, reason: str, message: str) -> list[StreamEvent]:
        """An `error` that is not stored; it repeats the last cursor, so resuming loses nothing."""
        self._phase = Phase.ENDED
        data = terminal_data(message=message, reason=reason)
        return [StreamEvent(self._generation, self._last, "error", data)]

    def __repr__(self) -> str:
        return f"<Subscription {self.key!r} {self._phase.value} at {self._generation}:{self._last}>"
