"""Abandonment: a generation that no reader on any instance follows for its window is
cancelled (reason `abandoned`), so a user who left for good stops costing tokens.

Readers are counted in storage, per session, as a "read until" time: every instance
marks the sessions it has readers of once per idle check (one call for all of them,
held for two checks), and at once when a reader starts following a key, so a reconnect
counts as soon as it is made. The instance that runs a generation checks, once per
idle check too, whether any reader was seen within the window (one call for all its
generations that have one), and storage ends the unread ones atomically, exactly as a
cancel does. Nothing of this runs unless a window is set somewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._events import terminal_data
from ._fanout import Fanout
from ._logs import about
from ._policy import Policies
from ._producer import Producer
from .backends._base import Backend, Unread

logger = logging.getLogger("fastapi_streamhub")

ABANDONED = terminal_data(reason="abandoned")

Guard = Callable[[str, Callable[[], Awaitable[None]]], None]


class Abandonment:
    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        fanout: Fanout,
        policies: Policies,
        running: Callable[[], Iterable[Producer]],
    ) -> None:
        self._backend = backend
        self._config = config
        self._fanout = fanout
        self._policies = policies
        self._running = running
        self._windows: dict[tuple[str, str], int] = {}
        self._new_readers: set[str] = set()
        self._guard: Guard | None = None

    def start(self, guard: Guard) -> None:
        self._guard = guard
        self._fanout.on_follow = self.reader_added

    def track(self, key: str, generation: str, window_ms: int | None) -> None:
        if window_ms is not None:
            self._windows[(key, generation)] = window_ms

    def forget(self, key: str, generation: str) -> None:
        self._windows.pop((key, generation), None)

    @property
    def _hold_ms(self) -> int:
        return int(2 * self._config.idle_check_s * 1000)

    def reader_added(self, key: str) -> None:
        """Mark a new reader's key at once (readers that start together, in one call)."""
        if self._guard is None or not self._policies.abandons:
            return
        self._new_readers.add(key)
        if len(self._new_readers) == 1:
            self._guard("abandonment: new readers", self._mark_new)

    async def _mark_new(self) -> None:
        await anyio.lowlevel.checkpoint()
        keys, self._new_readers = list(self._new_readers), set()
        try:
            await self._backend.mark_read(keys, hold_ms=self._hold_ms)
        except BackendUnavailableError as exc:
            logger.warning("%d readers not marked (the next check will): %s", len(keys), exc)

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._config.idle_check_s)
            if not self._policies.abandons:
                continue
            try:
                await self.check()
            except BackendUnavailableError as exc:
                logger.warning("abandonment not checked, storage unavailable: %s", exc)

    async def check(self) -> None:
        """Mark the sessions this process reads; end this process's unread generations."""
        keys = self._fanout.read_keys()
        if keys:
            await self._backend.mark_read(keys, hold_ms=self._hold_ms)
        candidates = self._candidates()
        if not candidates:
            return
        ended = await self._backend.abandon_unread(
            [unread for unread, _ in candidates],
            data=ABANDONED,
            retention_ms=self._config.retention_ms,
        )
        for (unread, producer), abandoned in zip(candidates, ended, strict=True):
            if abandoned:
                key, generation = unread.key, unread.generation
                logger.info(
                    "stream %r (generation %s): abandoned",
                    key,
                    generation,
                    extra=about(key, generation),
                )
                producer._stop("cancelled")

    def _candidates(self) -> list[tuple[Unread, Producer]]:
        found = []
        for producer in self._running():
            key, generation = producer.key, producer.generation
            window = self._windows.get((key, generation))
            if (
                window is not None
                and producer.stop_reason is None
                and not self._fanout.has_local_readers(key, generation)
            ):
                found.append((Unread(key, generation, window), producer))
        return found
