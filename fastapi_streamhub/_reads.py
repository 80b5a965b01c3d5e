"""What readers ask about a stream: its status, its result, its events.

Every answer comes from storage (and the fan-out for live events), never from this
process's producers, so any instance answers alike whoever produces the stream.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._config import HubConfig
from ._cursor import Cursor, coerce_cursor
from ._fanout import Fanout
from ._keys import validate_key
from ._result import StreamResult, read_result
from ._shared_tasks import SharedTasks
from ._status import StreamStatus, stream_status
from ._subscription import Subscription
from .backends._base import Backend

_RESULT_ATTEMPTS = 3
"""A current generation replaced while its result was read is read again, this often."""


class StreamReads:
    def __init__(
        self, backend: Backend, fanout: Fanout, config: HubConfig, tasks: SharedTasks
    ) -> None:
        self._backend = backend
        self._fanout = fanout
        self._config = config
        self._tasks = tasks

    def subscribe(
        self, key: str, after: str | Cursor | None, max_queue: int | None
    ) -> Subscription:
        self._tasks.require_supervisor()
        return Subscription(
            key=validate_key(key),
            after=coerce_cursor(after),
            backend=self._backend,
            fanout=self._fanout,
            config=self._config,
            max_queue=max_queue or self._config.max_queue,
        )

    async def status(self, key: str) -> StreamStatus | None:
        (state,) = await self._backend.states([validate_key(key)])
        return None if state is None else stream_status(state)

    async def active(self, keys: Sequence[str]) -> dict[str, bool]:
        states = await self._backend.states([validate_key(k) for k in keys])
        return {
            key: state is not None and state.status == "active" and not state.lease_expired
            for key, state in zip(keys, states, strict=False)
        }

    async def result(self, key: str, generation: str | None) -> StreamResult | None:
        validate_key(key)
        for _ in range(_RESULT_ATTEMPTS):
            result = await read_result(
                self._backend, key, generation, page_size=self._config.replay_batch
            )
            if result is not None or generation is not None:
                return result
            if await self.status(key) is None:
                return None
        return None
