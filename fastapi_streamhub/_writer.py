"""One writer task for every producer of the process.

`publish` only buffers and wakes the writer. The writer takes what every producer
has buffered (up to `max_batch` events each) and stores it all in one backend
call, so one round trip carries many events of many streams under load and one
event when idle. A round is bounded (`max_round_events`, `max_round_bytes`): after
an outage every producer holds a full buffer, and one unbounded call would hold
Redis for a second or more. Producers left out of a round go first in the next.
Writes that fail because storage is away go back to the front of their producer's
buffer and are retried with backoff; seqs make that safe. After each round the
writer lets the readers it woke run, even when storage answered without
suspending (the memory backend), so none of them falls behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._observe import report_round, report_unavailable
from ._waiter import Waiter
from .backends._base import Append, AppendOutcome, Backend

if TYPE_CHECKING:
    from ._producer_core import ProducerCore as Producer

logger = logging.getLogger("fastapi_streamhub")

_MAX_BACKOFF_S = 1.0

WindUp = Callable[["Producer"], None]
"""Starts a stopped producer's wind-up as a task of its own."""


class Writer:
    def __init__(self, backend: Backend, config: HubConfig, *, wind_up: WindUp) -> None:
        self._backend = backend
        self._config = config
        self._wind_up = wind_up
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
            writes = self._take_round()
            if writes and not await self._store(writes):
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                await anyio.sleep(backoff)
            else:
                backoff = 0.0
                await anyio.lowlevel.checkpoint()

    def _take_round(self) -> list[tuple[Producer, Append]]:
        """One write from each producer with something to store, within the round's bounds."""
        producers, self._dirty = list(self._dirty), {}
        events_left = self._config.max_round_events
        chars_left = self._config.max_round_bytes
        writes: list[tuple[Producer, Append]] = []
        for index, producer in enumerate(producers):
            if events_left <= 0 or chars_left <= 0:
                self._dirty = {**dict.fromkeys(producers[index:]), **self._dirty}
                break
            if producer.stop_reason is not None:
                self._wind_up(producer)
                continue
            write = producer._take_write(events_left, chars_left)
            if write is not None:
                writes.append((producer, write))
                events_left -= len(write.events)
                chars_left -= sum(len(event.data) for event in write.events)
        return writes

    async def _store(self, writes: list[tuple[Producer, Append]]) -> bool:
        """Store a round of writes; False if storage was unavailable."""
        observer = self._config.observer
        started = time.perf_counter() if observer is not None else 0.0
        try:
            outcomes: list[AppendOutcome] = await self._backend.append_many(
                [write for _, write in writes], retention_ms=self._config.retention_ms
            )
        except BackendUnavailableError as exc:
            if observer is not None:
                report_unavailable(observer, writes, exc)
            for producer, write in writes:
                producer._write_failed(write, exc)
                self.wake(producer)
            return False
        except Exception as exc:
            logger.exception(
                "storing a round of writes failed; ending its streams: %s",
                ", ".join(f"{w.key!r} (generation {w.generation})" for _, w in writes),
            )
            if observer is not None:
                observer.storage_error("append", "final", exc)
            outcomes = ["failed"] * len(writes)
        if observer is not None:
            report_round(observer, writes, outcomes, time.perf_counter() - started)
        for (producer, write), outcome in zip(writes, outcomes, strict=True):
            producer._written(write, outcome)
            if producer._has_work:
                self.wake(producer)
        return any(outcome != "unavailable" for outcome in outcomes)
