"""The producers running in this process: who they are, whether storage agrees they
still run, and how they end at shutdown.

Storage is the truth about a generation; a local producer is only this process's
hand on it. A cancel signal can be lost (the Pub/Sub connection dropped just then),
so whenever notifications may have been lost, or a message this release cannot
read arrives on a control channel, the producers concerned look their generation
up in storage, all in one call, and stop if it has ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import BackendUnavailableError
from ._logs import about
from ._producer import Producer, StopReason
from .backends._base import Backend, SessionState

logger = logging.getLogger("fastapi_streamhub")

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]


def ended_reason(state: SessionState | None, generation: str) -> StopReason | None:
    """Why storage says `generation` no longer runs, or None if it does."""
    if state is None or state.generation != generation:
        return "stale"
    if state.status != "active":
        return state.status
    return None


class LocalProducers:
    def __init__(self, backend: Backend, config: HubConfig) -> None:
        self._backend = backend
        self._config = config
        self._by_key: dict[str, Producer] = {}
        self._checking: set[Producer] = set()

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Producer]:
        return iter(list(self._by_key.values()))

    def get(self, key: str) -> Producer | None:
        return self._by_key.get(key)

    def add(self, producer: Producer) -> None:
        self._by_key[producer.key] = producer

    def forget(self, producer: Producer) -> None:
        if self._by_key.get(producer.key) is producer:
            del self._by_key[producer.key]
        self._checking.discard(producer)

    async def still_running(self, producer: Producer) -> bool:
        """Ask storage; a producer whose generation has ended is stopped."""
        (state,) = await self._backend.states([producer.key])
        reason = ended_reason(state, producer.generation)
        if reason is not None:
            producer._stop(reason)
        return reason is None

    def check_soon(self, producer: Producer, spawn: Spawn) -> None:
        """Check `producer` against storage; checks asked for together share one call."""
        self._checking.add(producer)
        if len(self._checking) == 1:
            spawn("producer check", self._check)

    async def _check(self) -> None:
        await anyio.lowlevel.checkpoint()
        producers, self._checking = list(self._checking), set()
        try:
            states = await self._backend.states([p.key for p in producers])
        except BackendUnavailableError as exc:
            logger.warning(
                "%d producers not checked (the next write will tell): %s", len(producers), exc
            )
            return
        for producer, state in zip(producers, states, strict=True):
            reason = ended_reason(state, producer.generation)
            if reason is not None:
                producer._stop(reason)

    async def shutdown(self) -> None:
        """Give running producers `shutdown_grace_s` to finish, then end the rest with an
        `error` that every reader sees."""
        producers = list(self._by_key.values())
        if not producers:
            return
        with anyio.move_on_after(self._config.shutdown_grace_s):
            for producer in producers:
                await producer.wait()
        async with anyio.create_task_group() as group:
            for producer in producers:
                if not producer.finished:
                    logger.warning(
                        "stream %r (generation %s): cancelled by shutdown",
                        producer.key,
                        producer.generation,
                        extra=about(producer.key, producer.generation),
                    )
                    group.start_soon(self._end_for_shutdown, producer)

    async def _end_for_shutdown(self, producer: Producer) -> None:
        producer._interrupt_feeder()
        with anyio.move_on_after(self._config.cancel_wait_s):
            await producer._fail_all(
                "The server shut down before the stream finished.", reason="shutdown"
            )
