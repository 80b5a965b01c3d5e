"""The reader side: replay from storage, then follow live, never out of order.

The live listener is registered before the first read, so nothing published
during the replay is missed; live events at or below the last delivered seq are
dropped and a gap sends the reader back to storage. While catching up, or before
its reader starts, a full queue costs nothing (storage has it all); once live, a
full queue means the reader is too slow and it is ended with
`SubscriberLaggedError` (it can resume).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType

import anyio

from ._config import HubConfig
from ._cursor import Cursor
from ._errors import (
    BackendUnavailableError,
    InvalidCursorError,
    SessionNotFoundError,
    SubscriberLaggedError,
)
from ._events import StreamEvent, terminal_data
from ._fanout import Fanout, Tick
from ._waiter import Waiter
from .backends._base import Backend, EventBatch, Notification, SessionState

logger = logging.getLogger("fastapi_streamhub")


class Subscription:
    """Events of one key after a cursor. Use `async with hub.subscribe(...) as sub`."""

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
        self._generation = ""
        self._last = 0
        self._reset = False
        self._exhausted = False
        self._ended = False
        self._catching_up = True
        self._following = False
        self._queue: list[StreamEvent] = []
        self._lagged = False
        self._lost = False
        self._heard = False
        self._check_due = False
        self._wakeup: Waiter | None = None
        self._iterator: AsyncIterator[list[StreamEvent]] | None = None
        self._unavailable_since: float | None = None

    @property
    def exhausted(self) -> bool:
        """True when the cursor is the terminal event of a finished stream: nothing to send."""
        return self._exhausted

    @property
    def generation(self) -> str:
        return self._generation

    async def open(self) -> Subscription:
        """Check the key and the cursor (the errors an HTTP layer maps to 404 and 400)."""
        (state,) = await self._backend.states([self.key])
        if state is None:
            raise SessionNotFoundError(self.key)
        self._generation = state.generation
        after = self._after
        if after is None:
            return self
        if after.generation != state.generation:
            self._reset = True
        elif after.seq > state.last_seq:
            raise InvalidCursorError(
                f"cursor {after} is ahead of the stream, which has {state.last_seq} events"
            )
        else:
            self._last = after.seq
            self._exhausted = state.status != "active" and after.seq == state.last_seq
        return self

    def opened_at_start(self, generation: str) -> Subscription:
        """Open without a read, for the caller that has just claimed `generation`.

        Following the local producer before its first write means every event reaches
        this subscription live, so it starts without reading storage at all.
        """
        self._generation = generation
        if self._fanout.follow_local(self.key, generation, self._on_note):
            self._following = True
            self._catching_up = False
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
        if self._iterator is None and self._following:
            self._following = False
            await self._fanout.unfollow(self.key, self._on_note)
        if self._iterator is not None:
            iterator, self._iterator = self._iterator, None
            await iterator.aclose()  # type: ignore[attr-defined]

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
        if self._exhausted:
            return
        if not self._following:
            await self._fanout.follow(self.key, self._generation, self._on_note)
            self._following = True
        try:
            if self._reset:
                yield [StreamEvent(self._generation, 0, "reset", self._reset_data())]
            while not self._ended:
                batch = await self._next_batch()
                if batch:
                    yield batch
        finally:
            self._following = False
            await self._fanout.unfollow(self.key, self._on_note)

    def _reset_data(self) -> str:
        return terminal_data(generation=self._generation)

    def _on_note(self, note: Notification | Tick | None) -> None:
        if isinstance(note, EventBatch):
            self._heard = True
            self._receive(note)
        elif isinstance(note, Tick):
            self._check_due = not self._heard
            self._heard = False
            if not self._check_due:
                return
        elif note is None:
            self._catching_up = True
        else:
            self._lost = self._lost or note.generation == self._generation
        if self._wakeup is not None:
            self._wakeup.set()

    def _receive(self, batch: EventBatch) -> None:
        if len(self._queue) + len(batch.events) <= self._max_queue:
            self._queue.extend(batch.events)
        elif self._catching_up or self._iterator is None:
            self._queue.clear()
            self._catching_up = True
        else:
            self._lagged = True

    async def _next_batch(self) -> list[StreamEvent]:
        if not (self._queue or self._check_due or self._lagged or self._lost or self._catching_up):
            self._wakeup = Waiter()
            await self._wakeup.wait()
            self._wakeup = None
        if self._lagged:
            raise SubscriberLaggedError(self.key, self._max_queue)
        if self._lost:
            return self._synthetic_end("unavailable", "The stream's storage is unavailable.")
        if self._catching_up:
            return await self._catch_up()
        if self._queue:
            return self._take_live()
        if self._check_due:
            self._check_due = False
            return await self._check_producer()
        return []

    def _take_live(self) -> list[StreamEvent]:
        """The queued events that continue the stream: repeats are dropped (a retried
        write is notified again), and a gap sends the reader to storage for the rest."""
        queued, self._queue = self._queue, []
        if queued[0].generation != self._generation:
            self._catching_up = True
            return []
        fresh: list[StreamEvent] = []
        expected = self._last + 1
        for event in queued:
            if event.seq == expected:
                fresh.append(event)
                expected += 1
            elif event.seq > expected:
                self._catching_up = True
                break
        return self._accept(fresh)

    def _accept(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for index, event in enumerate(events):
            if event.terminal:
                events = events[: index + 1]
                self._ended = True
                break
        if events:
            self._last = events[-1].seq
        return events

    async def _catch_up(self) -> list[StreamEvent]:
        self._queue = [e for e in self._queue if e.seq > self._last]
        limit = self._config.replay_batch
        try:
            events = await self._backend.read(
                self.key, generation=self._generation, after_seq=self._last, limit=limit
            )
        except BackendUnavailableError:
            return await self._wait_for_backend()
        self._unavailable_since = None
        if events is None:
            return self._superseded()
        if len(events) < limit:
            self._catching_up = False
        return self._accept(events)

    async def _check_producer(self) -> list[StreamEvent]:
        """Idle: make sure the producer is alive, and read anything a lost notification hid."""
        try:
            (state,) = await self._backend.states([self.key])
            if self._lapsed(state):
                await self._backend.finish(
                    self.key,
                    generation=self._generation,
                    event="error",
                    data=terminal_data(
                        message="The stream's producer was lost.", reason="producer_lost"
                    ),
                    retention_ms=self._config.retention_ms,
                    only_if_lapsed=True,
                )
        except BackendUnavailableError:
            return await self._wait_for_backend()
        self._catching_up = True
        return []

    def _lapsed(self, state: SessionState | None) -> bool:
        return (
            state is not None
            and state.generation == self._generation
            and state.status == "active"
            and state.lease_expired
        )

    async def _wait_for_backend(self) -> list[StreamEvent]:
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        if now - self._unavailable_since >= self._config.write_deadline_s:
            return self._synthetic_end("unavailable", "The stream's storage is unavailable.")
        await anyio.sleep(min(self._config.idle_check_s, 0.5))
        return []

    def _superseded(self) -> list[StreamEvent]:
        return self._synthetic_end("producer_lost", "The stream's producer was lost.")

    def _synthetic_end(self, reason: str, message: str) -> list[StreamEvent]:
        """An `error` that is not stored; it repeats the last cursor, so resuming loses nothing."""
        self._ended = True
        data = terminal_data(message=message, reason=reason)
        return [StreamEvent(self._generation, self._last, "error", data)]
