"""Starting this process's producers, and seeing them end.

A generation gets a producer here when this process claims it (`register`) or a
worker adopts it (`run`); the producer is wired to the writer, fan-out, its inbox
and its cancel signals, and its tasks belong to the hub. Its wind-up hands it back:
forgotten here, its generation's end handed to finishing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from ._config import HubConfig
from ._errors import BackendUnavailableError, SessionBusyError
from ._fanout import Fanout
from ._finishing import Finishing
from ._inbox import InboxReader
from ._jobs import (
    JobOutcome,
    JobStream,
    StreamJob,
    adopt_job,
    close_unstarted,
    coerce_job,
    generator_of,
    wait_for_end,
)
from ._join_wire import INBOX_KIND
from ._keys import validate_key
from ._local import LocalProducers
from ._logs import about
from ._producer import Producer
from ._producer_core import ProducerCore
from ._runner import drive
from ._shared_tasks import SharedTasks
from .backends._base import Backend

logger = logging.getLogger("fastapi_streamhub")


class Launcher:
    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        fanout: Fanout,
        producers: LocalProducers,
        inboxes: InboxReader,
        finishing: Finishing,
        tasks: SharedTasks,
        instance_id: str,
    ) -> None:
        self._backend = backend
        self._config = config
        self._fanout = fanout
        self._producers = producers
        self._inboxes = inboxes
        self._finishing = finishing
        self._tasks = tasks
        self._instance_id = instance_id

    async def register(self, key: str, policy: str | None) -> tuple[Producer, bool]:
        """Claim `key` for a new generation, or return this process's running producer."""
        self._tasks.require_supervisor()
        validate_key(key)
        existing = self._producers.get(key)
        if existing is not None:
            if existing.stop_reason is None and await self._producers.still_running(existing):
                return existing, False
            await self._let_finish(existing)
        created, state = await self._finishing.claim(key, policy)
        if not created:
            raise SessionBusyError(key, state.generation)
        return self._start(key, state.generation), True

    async def run(self, job: StreamJob | Mapping[str, Any], stream: JobStream) -> JobOutcome:
        """Adopt a dispatched job's generation and produce it here until it ends."""
        self._tasks.require_supervisor()
        job = coerce_job(job)
        outcome = await adopt_job(self._backend, self._config, job, self._instance_id)
        if outcome != "ok":
            await close_unstarted(stream)
            return JobOutcome(False, outcome)
        producer = self._start(job.key, job.generation)
        self.spawn(producer, lambda: drive(producer, generator_of(stream)))
        return JobOutcome(True, await wait_for_end(producer, self._config))

    def spawn(self, producer: Producer, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` as the producer's task; whatever it raises ends this stream only."""

        async def failed(exc: BaseException) -> None:
            await producer.fail("The stream failed.", reason="failed")

        self._tasks.require_supervisor().guard(
            f"stream {producer.key!r} (generation {producer.generation}): producer",
            lambda: producer._run_task(run),
            failed,
        )

    def check_soon(self, producer: Producer) -> None:
        """Have storage say whether `producer`'s generation still runs (if the hub runs)."""
        supervisor = self._tasks.supervisor
        if supervisor is not None:
            self._producers.check_soon(producer, supervisor.guard)

    def wind_up(self, producer: ProducerCore) -> None:
        """Run the producer's wind-up as a task of its own (the writer asks for it)."""
        self._tasks.require_supervisor().guard(
            f"stream {producer.key!r} (generation {producer.generation}): wind-up",
            producer._wind_up,
        )

    async def _let_finish(self, producer: Producer) -> None:
        """A quick restart waits (briefly) for the stopped run to finish: its readers here
        get its end before the new generation replaces its events in storage."""
        with anyio.move_on_after(self._config.cancel_wait_s):
            await producer.wait()

    def _start(self, key: str, generation: str) -> Producer:
        """This process's producer of a generation it claimed or adopted."""
        producer = Producer(
            key=key,
            generation=generation,
            backend=self._backend,
            writer=self._tasks.require_writer(),
            fanout=self._fanout,
            config=self._config,
            on_finished=self._forget,
            on_hint=self.check_soon,
            start_task=self._tasks.require_supervisor().guard,
        )
        self._producers.add(producer)
        self._inboxes.add(producer.inbox)
        producer.inbox.on(INBOX_KIND, producer._on_source_message)
        self._fanout.open_local(key, generation)
        logger.debug(
            "stream %r (generation %s): started", key, generation, extra=about(key, generation)
        )
        if (observer := self._config.observer) is not None:
            observer.stream_started(producer)
        self._tasks.require_supervisor().guard(
            f"stream {key!r} (generation {generation}): control watch",
            lambda: self._watch_control(producer),
        )
        return producer

    async def _watch_control(self, producer: Producer) -> None:
        """Cancel signals for `producer`, set up off the start path: a signal missed in
        between is not lost, as the next write or lease refresh finds the stream ended."""
        try:
            await self._fanout.add(producer.key, "control", producer._on_control)
        except BackendUnavailableError as exc:
            key, generation = producer.key, producer.generation
            logger.warning(
                "stream %r (generation %s): no cancel signals until a write: %s",
                key,
                generation,
                exc,
                extra=about(key, generation),
            )
        self._inboxes.read_soon(producer.inbox)

    async def _forget(self, producer: Producer) -> None:
        """Run by the producer's own wind-up, so its end costs no task of its own."""
        self._producers.forget(producer)
        self._inboxes.discard(producer.inbox)
        self._finishing.ended(producer)
        key, generation, outcome = producer.key, producer.generation, producer.stop_reason
        logger.debug(
            "stream %r (generation %s): ended (%s, %d events)",
            key,
            generation,
            outcome,
            producer.seq,
            extra=about(key, generation),
        )
        if (observer := self._config.observer) is not None:
            observer.stream_ended(producer, outcome or "error")
        await self._fanout.remove(producer.key, "control", producer._on_control)
