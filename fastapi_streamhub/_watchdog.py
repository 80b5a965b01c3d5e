"""Idle checks: is the producer of a quiet stream still there?

A reader of a producer in another process hears of it only through
notifications; if that producer's process died, nothing more comes. Every
`idle_check_s` the watchdog reads, in one backend call for the whole process, the
state of each key followed through storage that heard nothing since the last
check, and hands the result to that key's readers (which catch up if storage is
ahead of them). A lapsed lease is ended here, once per key rather than once per
reader, with a stored `error`: `producer_lost`, or `not_started` for a stream handed
to a job queue that no worker adopted before its start deadline (its lease until
then). Readers of a producer in this process need no checks: they hear of its end
directly. Processes start their checks at a random phase, so a fleet's checks spread
out over the interval.
"""

from __future__ import annotations

import logging
import random

import anyio

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._events import terminal_data
from ._fanout import Checked, Fanout
from ._logs import about
from ._observe import root_error
from .backends._base import Backend, Control, SessionState

logger = logging.getLogger("fastapi_streamhub")

_LOST = terminal_data(message="The stream's producer was lost.", reason="producer_lost")
NOT_STARTED = terminal_data(message="No worker started the stream in time.", reason="not_started")


class Watchdog:
    def __init__(self, backend: Backend, fanout: Fanout, config: HubConfig) -> None:
        self._backend = backend
        self._fanout = fanout
        self._config = config

    async def run(self) -> None:
        interval = self._config.idle_check_s
        await anyio.sleep(random.uniform(0, interval))
        while True:
            await self.check()
            await anyio.sleep(interval)

    async def check(self) -> None:
        keys = self._fanout.idle_keys()
        if not keys:
            return
        try:
            states = await self._backend.states(keys)
        except BackendUnavailableError as exc:
            if (observer := self._config.observer) is not None:
                observer.storage_error("states", "transient", root_error(exc))
            for key in keys:
                self._fanout.deliver_check(key, Checked(None, reachable=False))
            return
        for key, state in zip(keys, states, strict=True):
            if state is not None and state.status == "active" and state.lease_expired:
                state = await self._end_lapsed(state)
            self._fanout.deliver_check(key, Checked(state))

    async def _end_lapsed(self, state: SessionState) -> SessionState | None:
        """Store the end of a run whose producer is gone; if storage takes nothing, its
        readers here end without it."""
        try:
            finished, after = await self._backend.finish(
                state.key,
                generation=state.generation,
                event="error",
                data=NOT_STARTED if state.pending else _LOST,
                retention_ms=self._config.retention_ms,
                only_if_lapsed=True,
            )
        except BackendUnavailableError:
            return state
        except Exception:
            logger.exception(
                "stream %r (generation %s): its lost producer's end could not be stored",
                state.key,
                state.generation,
                extra=about(state.key, state.generation),
            )
            self._fanout.dispatch(state.key, Control("lost", state.generation))
            return state
        if finished:
            if (observer := self._config.observer) is not None:
                observer.stream_lost(
                    state.key, state.generation, "not_started" if state.pending else "producer_lost"
                )
            logger.warning(
                "stream %r (generation %s): %s",
                state.key,
                state.generation,
                "no worker started it in time" if state.pending else "producer lost (lease lapsed)",
                extra=about(state.key, state.generation),
            )
        return after
