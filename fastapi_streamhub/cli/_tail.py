"""`streamhub tail`: print a stream's events, and with `--follow` keep printing them as
they come, across storage outages and across the key's next generations.

It reads through `hub.subscribe`, as the app's resume route does, so what it prints is
what a client receives: the same ids, no duplicate, no gap. Following, it remembers
the id of the last event printed and resumes after it whenever the subscription was
interrupted (storage away, the subscriber lagged, the generation gone); when a
generation ends it waits for the next one, which begins with `reset`.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from .._cursor import Cursor
from .._errors import BackendUnavailableError, SessionNotFoundError, SubscriberLaggedError
from .._events import StreamEvent
from .._hub import StreamHub

Emit = Callable[[StreamEvent], None]
Note = Callable[[str], None]

_MAX_BACKOFF_S = 5.0


class Tail:
    """Prints the events of `key` after `after` through `emit`; `note` tells a person
    what it waits for (storage back, the next generation)."""

    def __init__(
        self,
        hub: StreamHub,
        key: str,
        *,
        after: Cursor | None,
        emit: Emit,
        note: Note,
        poll_s: float = 0.5,
    ) -> None:
        self._hub = hub
        self._key = key
        self._cursor = after
        self._emit = emit
        self._note = note
        self._poll_s = poll_s

    async def snapshot(self) -> None:
        """The events storage holds now after the cursor, up to the last one.

        Raises:
            SessionNotFoundError: no stream under the key.
            BackendUnavailableError: storage did not answer.
        """
        status = await self._hub.status(self._key)
        if status is None:
            raise SessionNotFoundError(self._key)
        end = Cursor(status.generation, status.last_seq)
        cursor = self._cursor
        if cursor is None and end.seq == 0:
            return
        if cursor is not None and cursor.generation == end.generation and cursor.seq >= end.seq:
            return
        async with self._hub.subscribe(self._key, cursor) as subscription:
            async for event in subscription:
                if self._interrupted(event):
                    raise BackendUnavailableError(_reason(event))
                self._print(event)
                if event.terminal or (event.generation == end.generation and event.seq >= end.seq):
                    return

    async def follow(self) -> None:
        """Print events as they come until cancelled (Ctrl-C).

        Raises:
            SessionNotFoundError: no stream under the key when it starts.
        """
        if await self._hub.status(self._key) is None:
            raise SessionNotFoundError(self._key)
        backoff = 0.0
        while True:
            try:
                ended = await self._follow_generation()
                backoff = 0.0
            except SubscriberLaggedError:
                continue
            except (BackendUnavailableError, SessionNotFoundError) as exc:
                backoff = min(max(backoff * 2, self._poll_s), _MAX_BACKOFF_S)
                self._note(f"waiting for the stream ({exc}); retrying in {backoff:.1f} s")
                await anyio.sleep(backoff)
                continue
            if ended:
                await self._next_generation()

    async def _follow_generation(self) -> bool:
        """Print until the generation ends (True) or the subscription is interrupted."""
        async with self._hub.subscribe(self._key, self._cursor) as subscription:
            async for event in subscription:
                if self._interrupted(event):
                    self._note(f"interrupted: {_reason(event)}; resuming")
                    return False
                self._print(event)
                if event.terminal:
                    return True
        return True  # the cursor was the terminal event already

    async def _next_generation(self) -> None:
        generation = None if self._cursor is None else self._cursor.generation
        self._note("the stream has ended; waiting for its next generation")
        while True:
            try:
                status = await self._hub.status(self._key)
            except BackendUnavailableError:
                status = None
            if status is not None and status.generation != generation:
                return
            await anyio.sleep(self._poll_s)

    def _interrupted(self, event: StreamEvent) -> bool:
        """An `error` the subscription made up, not stored: it repeats the last id sent
        (storage away, the generation gone), where a stored one comes after it."""
        if not event.terminal:
            return False
        cursor = self._cursor
        if cursor is None or cursor.generation != event.generation:
            return event.seq == 0
        return event.seq <= cursor.seq

    def _print(self, event: StreamEvent) -> None:
        self._emit(event)
        self._cursor = Cursor(event.generation, event.seq)


def _reason(event: StreamEvent) -> str:
    value = event.value
    if isinstance(value, dict):
        return str(value.get("message") or value.get("reason") or value)
    return str(value)
