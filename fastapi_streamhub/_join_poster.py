"""What a joined source sends its generation's owner: buffered, numbered, one post in flight.

The producer's write path, on the far side of the inbox: `put` only buffers; the post
loop sends what was buffered while the previous post was in flight, as one message, so
one round trip carries many events under load and one when idle. When there is nothing
to say for a quarter of the lease, it posts a heartbeat, which renews the lease as
every message does. A post refused for now is retried until `write_deadline_s`, under
the same number, so the owner takes it once however often it was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import anyio

from . import _join_wire as wire
from ._config import HubConfig
from ._errors import (
    BackendUnavailableError,
    InboxFullError,
    NotRunningError,
    SessionNotFoundError,
)
from ._logs import about
from .backends._base import Backend, Posted

logger = logging.getLogger("fastapi_streamhub")

_BATCH_EVENTS: Final = 256
_BATCH_CHARS: Final = 64 * 1024
_MAX_BACKOFF_S: Final = 1.0


class Poster:
    """Posts one joined source's messages to the inbox of the key's running generation."""

    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        *,
        key: str,
        name: str,
        token: str,
        on_stop: Callable[[str], None],
    ) -> None:
        self._backend = backend
        self._config = config
        self._key = key
        self._name = name
        self._token = token
        self._on_stop = on_stop
        self.generation = ""
        """The generation posts must reach; set once joined."""
        self.posted = 0
        """The number of the last message posted (or being posted)."""
        self._pending: list[tuple[str | None, str]] = []
        self._end: tuple[str, str] | None = None
        self._halted = False
        self._wake = anyio.Event()
        self._room = anyio.Event()

    async def post(self, payload: str) -> Posted:
        """Post one message now.

        Raises:
            SessionNotFoundError, NotRunningError, InboxFullError, BackendUnavailableError.
        """
        outcome = await self._backend.post(
            self._key,
            kind=wire.INBOX_KIND,
            payload=payload,
            source=self._name,
            max_entries=self._config.max_events,
        )
        if outcome == "not_found":
            raise SessionNotFoundError(self._key)
        if outcome == "not_running":
            raise NotRunningError(self._key)
        if outcome == "full":
            raise InboxFullError(self._key, self._config.max_events)
        return outcome

    async def put(self, name: str | None, data: str) -> None:
        """Buffer one event; waits while `max_pending` events wait to be posted."""
        self._pending.append((name, data))
        self._wake.set()
        while len(self._pending) >= self._config.max_pending and not self._halted:
            await self._room.wait()

    def finish(self, event: str, data: str) -> None:
        """Post the source's end once everything buffered before it is posted."""
        if self._end is None:
            self._end = (event, data)
            self._wake.set()

    def halt(self) -> None:
        """Post nothing more; release whoever waits for room."""
        self._halted = True
        self._room.set()
        self._wake.set()

    async def run(self, lease_s: float) -> None:
        """Post what was buffered, one message in flight, until the end is posted."""
        while not self._halted:
            payload = self._next_payload()
            if payload is None:
                self._wake = anyio.Event()
                with anyio.move_on_after(lease_s / 4) as idle:
                    await self._wake.wait()
                if not idle.cancelled_caught:
                    continue
                payload = wire.heartbeat(self._token, self.posted + 1)
            self.posted += 1
            if not await self._post_until_stored(payload) or payload.startswith("X\n"):
                return

    def _next_payload(self) -> str | None:
        if self._pending:
            count, chars = 0, 0
            for _, data in self._pending[:_BATCH_EVENTS]:
                count, chars = count + 1, chars + len(data)
                if chars > _BATCH_CHARS:
                    break
            batch, self._pending = self._pending[:count], self._pending[count:]
            self._room.set()
            self._room = anyio.Event()
            return wire.events(self._token, self.posted + 1, batch)
        if self._end is not None:
            return wire.end(self._token, self.posted + 1, *self._end)
        return None

    async def _post_until_stored(self, payload: str) -> bool:
        """Post, retrying while storage is away; False once posting is over for good."""
        backoff, since = 0.0, anyio.current_time()
        while True:
            try:
                posted = await self.post(payload)
            except BackendUnavailableError as exc:
                if anyio.current_time() - since >= self._config.write_deadline_s:
                    logger.error(
                        "stream %r (generation %s): source %r: storage away: %s",
                        self._key,
                        self.generation,
                        self._name,
                        exc,
                        extra=about(self._key, self.generation),
                    )
                    self._on_stop("unavailable")
                    return False
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                await anyio.sleep(backoff)
                continue
            except (NotRunningError, SessionNotFoundError, InboxFullError) as exc:
                logger.warning(
                    "stream %r (generation %s): source %r: %s",
                    self._key,
                    self.generation,
                    self._name,
                    exc,
                    extra=about(self._key, self.generation),
                )
                self._on_stop("generation_ended")
                return False
            if posted.generation != self.generation:
                self._on_stop("generation_ended")
                return False
            return True
