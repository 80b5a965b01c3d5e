"""Lease renewals for every running producer of the process, in one backend call.

Renewals run four times per lease and each call is given up after an eighth of it,
then retried at once: one stalled call (a socket timeout is often longer than
that) can never use up a lease. They go out on a connection of their own, so they
never wait behind a backlog of appends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import anyio

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._observe import root_error
from .backends._base import Backend, Lease

if TYPE_CHECKING:
    from ._producer import Producer

logger = logging.getLogger("fastapi_streamhub")

_RETRY_S = 0.1
_LOST = frozenset({"stale", "error"})
"""Renewals refused because the lease is gone: another producer holds the key, or the
generation was ended as lost (the process froze past its lease)."""


class LeaseKeeper:
    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        running: Callable[[], Iterable[Producer]],
    ) -> None:
        self._backend = backend
        self._config = config
        self._running = running
        self._failing = False

    async def run(self) -> None:
        delay = self._config.renew_every_s
        while True:
            await anyio.sleep(delay)
            delay = self._config.renew_every_s if await self.renew() else _RETRY_S

    async def renew(self) -> bool:
        """Renew every running producer's lease; False if storage did not answer in time."""
        producers = [p for p in self._running() if p.stop_reason is None]
        if not producers:
            return True
        config = self._config
        try:
            with anyio.fail_after(config.renew_timeout_s):
                outcomes = await self._backend.refresh_many(
                    [Lease(p.key, p.generation) for p in producers],
                    lease_ms=config.lease_ms,
                    retention_ms=config.retention_ms,
                )
        except (BackendUnavailableError, TimeoutError) as exc:
            if (observer := config.observer) is not None:
                observer.storage_error("refresh", "transient", root_error(exc))
            if not self._failing:
                logger.warning("%d leases not renewed, retrying: %r", len(producers), exc)
            self._failing = True
            return False
        self._failing = False
        observer = config.observer
        for producer, outcome in zip(producers, outcomes, strict=True):
            producer._lease_renewed(outcome)
            if observer is not None and outcome in _LOST:
                observer.lease_lost(producer, outcome)
        return True
