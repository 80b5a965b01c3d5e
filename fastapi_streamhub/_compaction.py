"""Compaction of this process's finished generations, `compact_after_s` after their end.

One supervised task keeps a queue in end order (the delay is the same for all), so a
burst of finished streams costs no task, nor timer, each. A generation is compacted in
bounded steps (`CHUNK_EVENTS` raw events each), so no step holds Redis for long. If the
process stops first, the raw events stay: they are just as valid, only larger.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._logs import about
from ._observe import root_error
from ._waiter import Waiter
from .backends._base import Backend
from .backends._packing import CHUNK_EVENTS

logger = logging.getLogger("fastapi_streamhub")

_RETRY_S = 1.0


async def compact(backend: Backend, key: str, generation: str) -> bool:
    """Compact the ended `generation` of `key` now; False if there was nothing to do."""
    while True:
        outcome = await backend.compact(key, generation=generation, chunk=CHUNK_EVENTS)
        if outcome != "more":
            return outcome == "done"
        await anyio.lowlevel.checkpoint()


class Compactor:
    def __init__(self, backend: Backend, config: HubConfig) -> None:
        self._backend = backend
        self._config = config
        self._queue: deque[tuple[float, str, str]] = deque()
        self._wakeup: Waiter | None = None

    def schedule(self, key: str, generation: str) -> None:
        """Compact `generation` once `compact_after_s` have passed."""
        if not self._config.compact:
            return
        self._queue.append((time.monotonic() + self._config.compact_after_s, key, generation))
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup = Waiter()
                await self._wakeup.wait()
                continue
            due, key, generation = self._queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            self._queue.popleft()
            await self._compact(key, generation)

    async def _compact(self, key: str, generation: str) -> None:
        observer = self._config.observer
        try:
            outcome = "done" if await compact(self._backend, key, generation) else "skipped"
        except BackendUnavailableError as exc:
            logger.warning(
                "stream %r (generation %s): compaction put off, storage unavailable: %s",
                key,
                generation,
                exc,
                extra=about(key, generation),
            )
            if observer is not None:
                observer.storage_error("compact", "transient", root_error(exc))
            self._queue.append((time.monotonic() + _RETRY_S, key, generation))
            return
        except Exception:
            logger.exception(
                "stream %r (generation %s): compaction failed; its events stay as they are",
                key,
                generation,
                extra=about(key, generation),
            )
            outcome = "failed"
        if observer is not None:
            observer.compacted(key, generation, outcome)
