"""One writer task for every producer of the process.

`publish` only buffers and wakes the writer. The writer takes what every producer
has buffered (up to `max_batch` events each) and stores it all in one backend
call, so one round trip carries many events of many streams under load and one
event when idle. Writes that fail because storage is away go back to the front
of their producer's buffer and are retried with backoff; seqs make that safe.
After each round the writer lets the readers it woke run, even when storage
answered without suspending (the memory backend), so none of them falls behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._errors import BackendUnavailableError
from ._waiter import Waiter
from .backends._base import Append, Backend

if TYPE_CHECKING:
    from ._producer import Producer

logger = logging.getLogger("fastapi_streamhub")

_MAX_BACKOFF_S = 1.0

Spawn = Callable[..., object]
"""`TaskGroup.start_soon`; given a `name`, it need not work one out (12 µs per task)."""


class Writer:
    def __init__(self, backend: Backend, *, retention_ms: int, spawn: Spawn) -> None:
        self._backend = backend
        self._retention_ms = retention_ms
        self._spawn = spawn
        self._dirty: dict[Producer, None] = {}
        self._wakeup: Waiter | None = None

    def wake(self, producer: Producer) -> None:
        """`producer` has something to write, or has stopped and must be wound up."""
        self._dirty[producer] = None
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def run(self) -> None:
        backoff = 0.0
        while True:
            if not self._dirty:
                self._wakeup = Waiter()
                await self._wakeup.wait()
                continue
            producers, self._dirty = list(self._dirty), {}
            writes = [(p, w) for p in producers if (w := self._take(p)) is not None]
            if writes and not await self._store(writes):
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                await anyio.sleep(backoff)
            else:
                backoff = 0.0
                await anyio.lowlevel.checkpoint()

    def _take(self, producer: Producer) -> Append | None:
        if producer.stop_reason is not None:
            self._spawn(producer.wind_up, name=f"streamhub wind-up {producer.key!r}")
            return None
        return producer.take_write()

    async def _store(self, writes: list[tuple[Producer, Append]]) -> bool:
        """Store a round of writes; False if storage was unavailable."""
        try:
            outcomes = await self._backend.append_many(
                [write for _, write in writes], retention_ms=self._retention_ms
            )
        except BackendUnavailableError as exc:
            for producer, write in writes:
                producer.write_failed(write, exc)
                self.wake(producer)
            return False
        except Exception:
            logger.exception("storing events failed; stopping the producers of this round")
            outcomes = ["error"] * len(writes)
        for (producer, write), outcome in zip(writes, outcomes, strict=True):
            producer.written(write, outcome)
            if producer.has_work:
                self.wake(producer)
        return True
