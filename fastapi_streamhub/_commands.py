"""What any instance can do to a stream, wherever its producer runs: cancel it, steer
it, compact it, remove it.

Each acts through storage (and its signals), so the caller need not know which
process produces the stream, or whether one still does.
"""

from __future__ import annotations

import dataclasses
import time

from ._cancel import cancel
from ._compaction import compact
from ._config import HubConfig
from ._fanout import Fanout
from ._keys import validate_key
from ._local import LocalProducers
from ._reads import StreamReads
from ._shared_tasks import SharedTasks
from ._status import CancelResult
from ._steering import Steered, steer
from .backends._base import Backend


class StreamCommands:
    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        fanout: Fanout,
        producers: LocalProducers,
        reads: StreamReads,
        tasks: SharedTasks,
    ) -> None:
        self._backend = backend
        self._config = config
        self._fanout = fanout
        self._producers = producers
        self._reads = reads
        self._tasks = tasks

    async def cancel(
        self, key: str, generation: str | None, wait: float | None
    ) -> CancelResult | None:
        """Cancel, tell the observer, and attach the result the cancel left."""
        started = time.monotonic()
        outcome = await self._cancel(validate_key(key), generation, wait)
        if outcome is None:
            return None
        if (observer := self._config.observer) is not None:
            observer.cancel_finished(
                key,
                outcome.status.generation,
                outcome.cancelled,
                outcome.stopped,
                time.monotonic() - started,
            )
        result = await self._reads.result(key, outcome.status.generation)
        return dataclasses.replace(outcome, result=result)

    async def steer(self, key: str, message: object, source: str) -> Steered:
        self._tasks.require_supervisor()
        return await steer(self._backend, self._config, validate_key(key), message, source)

    async def remove(self, key: str) -> bool:
        await self._cancel(validate_key(key), None, None)
        return await self._backend.remove(key)

    async def compact(self, key: str) -> bool:
        (state,) = await self._backend.states([validate_key(key)])
        if state is None or state.status == "active":
            return False
        return await compact(self._backend, key, state.generation)

    async def _cancel(
        self, key: str, generation: str | None, wait: float | None
    ) -> CancelResult | None:
        self._tasks.require_supervisor()
        return await cancel(
            key,
            generation=generation,
            wait=wait,
            backend=self._backend,
            fanout=self._fanout,
            local=self._producers,
            config=self._config,
        )
