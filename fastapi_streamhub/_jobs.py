"""Streams produced in another process: a web process claims and serves, a worker runs.

The web process claims the key for a *pending* generation (no owner yet; its lease is
the start deadline) and hands a job (key, generation, parameters) to a job queue. A
worker adopts that generation (`adopt`: once per generation, before the deadline) and
from then on produces it like any producer: fenced by its generation, leased, stopped by
a cancel from any instance. A job whose generation was adopted already (a redelivery, a
duplicate) is refused, and the worker drops it.

Nothing waits forever on a queue that is down: once the deadline has passed, the
watchdog of any instance with readers stores `error` (`not_started`), a worker that gets
the job too late stores it itself, and a new start may claim the key.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anyio

from ._config import HubConfig
from ._cursor import new_generation
from ._errors import SessionBusyError
from ._events import terminal_data
from ._keys import validate_key
from ._logs import about
from ._producer import Producer
from ._watchdog import NOT_STARTED
from .backends._base import AdoptOutcome, Backend, SessionState

logger = logging.getLogger("fastapi_streamhub")

_NOT_SENT = terminal_data(message="The stream could not be handed to a worker.", reason="not_sent")
_INTERRUPTED = "The worker stopped before the stream finished."

JobStream = AsyncIterator[object] | Callable[[], AsyncIterator[object]]
"""What a worker runs for a job: an async generator, or a function that makes one (called
only once the worker has adopted the job)."""


@dataclass(frozen=True, slots=True)
class StreamJob:
    """What a job queue carries from the web process to a worker.

    Args:
        key: the stream key.
        generation: the generation the web process claimed for the worker.
        params: the request's parameters for the worker (JSON-serialisable).
    """

    key: str
    generation: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The job as plain JSON-serialisable data, for a queue's message."""
        return {"key": self.key, "generation": self.generation, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamJob:
        """The job back from `as_dict()`'s data.

        Raises:
            ValueError: `data` is not a job.
        """
        key, generation, params = data.get("key"), data.get("generation"), data.get("params")
        if not isinstance(key, str) or not isinstance(generation, str) or not generation:
            raise ValueError(f"not a stream job: {data!r}")
        if not isinstance(params, Mapping):
            raise ValueError(f"a stream job's params must be a mapping, got {params!r}")
        return cls(validate_key(key), generation, dict(params))


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What `StreamHub.run` did with a job."""

    adopted: bool
    """True if this worker produced the generation; False if it refused the job."""
    reason: str
    """Adopted: how the generation ended (`done`, `cancelled`, `error`, ...). Refused: why
    (`adopted`: another worker has it; `expired`: too late; `stale`: the key has moved on;
    or the status it ended with, such as `cancelled`)."""


def coerce_job(job: StreamJob | Mapping[str, Any]) -> StreamJob:
    return job if isinstance(job, StreamJob) else StreamJob.from_dict(job)


def _json_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"a stream job's params must be a mapping, got {type(params).__name__}")
    try:
        return dict(json.loads(json.dumps(params)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a stream job's params must be JSON-serialisable: {exc}") from None


ClaimPending = Callable[[str, int], Awaitable[tuple[bool, SessionState]]]
"""Claims a key for a pending generation with the hub's policy (retention, finish hook)."""


async def claim_job(
    config: HubConfig,
    key: str,
    start_timeout_s: float | None,
    claim: ClaimPending,
) -> str:
    """Claim `key` for a generation a worker will produce; returns the generation.

    Raises:
        SessionBusyError: the key is running (or waiting for its worker).
    """
    timeout_s = config.start_timeout_s if start_timeout_s is None else start_timeout_s
    if timeout_s <= 0:
        raise ValueError(f"start_timeout_s must be positive, got {timeout_s!r}")
    created, state = await claim(validate_key(key), int(timeout_s * 1000))
    if not created:
        raise SessionBusyError(key, state.generation)
    return state.generation


async def send_job(
    backend: Backend,
    config: HubConfig,
    key: str,
    generation: str,
    params: Callable[[], Awaitable[Mapping[str, Any] | None]],
    send: Callable[[StreamJob], Awaitable[object]],
) -> StreamJob:
    """Build the job and send it; if either fails, its readers get `error` (`not_sent`)
    at once rather than after the start deadline, and the exception propagates."""
    try:
        job = StreamJob(key, generation, _json_params(await params()))
        await send(job)
    except BaseException:
        with anyio.CancelScope(shield=True), anyio.move_on_after(config.cancel_wait_s):
            await _end(backend, config, key, generation, _NOT_SENT, only_if_lapsed=False)
        raise
    return job


async def adopt_job(backend: Backend, config: HubConfig, job: StreamJob, owner: str) -> str:
    """Take over the job's generation; `ok`, or why it is refused. A job that comes too
    late ends its generation with `not_started`, in case no reader's watchdog did."""
    token = new_generation()
    outcome: AdoptOutcome = await backend.adopt(
        job.key,
        generation=job.generation,
        owner=owner,
        token=token,
        lease_ms=config.lease_ms,
        retention_ms=config.retention_ms,
    )
    if outcome == "expired":
        await _end(backend, config, job.key, job.generation, NOT_STARTED, only_if_lapsed=True)
    if outcome != "ok":
        logger.info(
            "stream %r (generation %s): job refused: %s",
            job.key,
            job.generation,
            outcome,
            extra=about(job.key, job.generation),
        )
    return outcome


async def _end(
    backend: Backend,
    config: HubConfig,
    key: str,
    generation: str,
    data: str,
    *,
    only_if_lapsed: bool,
) -> None:
    try:
        await backend.finish(
            key,
            generation=generation,
            event="error",
            data=data,
            retention_ms=config.retention_ms,
            only_if_lapsed=only_if_lapsed,
        )
    except Exception as exc:
        logger.warning(
            "stream %r (generation %s): could not store its end: %s",
            key,
            generation,
            exc,
            extra=about(key, generation),
        )


def generator_of(stream: JobStream) -> AsyncGenerator[object, None]:
    generator = stream() if callable(stream) else stream
    if not inspect.isasyncgen(generator):
        raise TypeError(f"a job's stream must be an async generator, not {generator!r}")
    return cast("AsyncGenerator[object, None]", generator)


async def close_unstarted(stream: JobStream) -> None:
    """A refused job's generator never ran; close it all the same."""
    if inspect.isasyncgen(stream):
        await stream.aclose()


async def wait_for_end(producer: Producer, config: HubConfig) -> str:
    """Wait until the generation ends. If the queue gives up on the job meanwhile (its
    task is cancelled, on a timeout), the generator is stopped and readers get `error`."""
    try:
        return await producer.wait()
    except BaseException:
        with anyio.CancelScope(shield=True), anyio.move_on_after(config.cancel_wait_s):
            producer._interrupt_feeder()
            await producer.fail(_INTERRUPTED, reason="interrupted")
        raise
