"""The seam that metrics and tracing plug into: the hub tells an `Observer` what happens.

`StreamHub(observers=[...])` takes any number of them; the Prometheus
(`fastapi_streamhub.prometheus`) and OpenTelemetry (`fastapi_streamhub.otel`) extras
are two. With none configured, `HubConfig.observer` is None and every call site costs
one attribute check. Nothing is reported per event: the writer reports each round
(its events, bytes and duration), so an observer's cost does not grow with the
token rate.

Observers are called synchronously, from the hub's own tasks, so they must be quick
and must not block; one that raises is logged and the hub goes on (`ObserverGroup`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, cast

from ._errors import BackendUnavailableError

if TYPE_CHECKING:
    from ._producer import Producer
    from ._producer_core import ProducerCore
    from ._subscription import Subscription
    from .backends._base import Append, AppendOutcome, SessionState

logger = logging.getLogger("fastapi_streamhub")

SubscriberState = Literal["replaying", "live"]
"""A connected subscriber reads storage (`replaying`, also after a gap) or follows
notifications (`live`)."""

ResumeSource = Literal["header", "query", "none", "attach", "api"]
"""Where a subscription's cursor came from: the `Last-Event-ID` header, the
`last_event_id` query parameter, no cursor on the resume route, a start request that
attached to a running generation, or `hub.subscribe` called by the application."""

ResumeResult = Literal["continued", "reset", "no_content", "from_start"]
"""What a resume got: the events after its cursor, `reset` then the current
generation, `204 No Content` (its cursor is the terminal event), or, without a
cursor, the generation from its start."""

FailureClass = Literal["transient", "final"]

SteerOutcome = Literal[
    "accepted", "not_found", "not_running", "full", "too_large", "invalid", "unavailable"
]
"""What `hub.steer` answered: accepted, or refused because the key has no stream, its
generation is not running, its inbox is full, the message is too large or not JSON,
or storage was away."""

_source: ContextVar[ResumeSource] = ContextVar("streamhub_resume_source", default="api")


@contextmanager
def resume_source(source: ResumeSource) -> Iterator[None]:
    """Subscriptions opened inside this block report `source` (set by the routes)."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)


def current_resume_source() -> ResumeSource:
    return _source.get()


def cursor_source(header: str | None, query: str | None) -> ResumeSource:
    """Which of the resume route's two cursor parameters carried the cursor."""
    if header is not None:
        return "header"
    return "none" if query is None else "query"


class Observer:
    """Told what the hub does; every method is a no-op here, so an observer overrides
    only what it needs. Keys and generation ids are those of the stream concerned."""

    def stream_started(self, producer: Producer) -> None:
        """This process started producing a generation (claimed, or adopted from a job)."""

    def stream_ended(self, producer: Producer, outcome: str) -> None:
        """This process's producer ended and its end is recorded. `outcome`: `done`,
        `error`, `cancelled`, `stale` (fenced: another producer took the key),
        `unavailable` (storage away past `write_deadline_s`) or `failed`."""

    def stream_lost(self, key: str, generation: str, reason: str) -> None:
        """This process stored the end of a generation whose lease lapsed: `producer_lost`,
        or `not_started` (a dispatched job no worker adopted in time)."""

    def lease_lost(self, producer: Producer, outcome: str) -> None:
        """A lease renewal found `producer`'s lease gone: `stale` (another producer holds
        the key) or `error` (the generation was ended as lost: this process stalled past
        its lease). The producer stops."""

    def round_written(self, events: int, data_bytes: int, writes: int, duration_s: float) -> None:
        """The writer stored one round: `writes` producers' events, all in one call."""

    def write_retried(self, producer: Producer, error: BaseException) -> None:
        """Storage was away for a write of `producer`; it is kept and retried."""

    def storage_error(self, operation: str, failure: FailureClass, error: BaseException) -> None:
        """A call to storage failed: `transient` (retried) or `final` (a bug, or storage
        refusing for good). `error` is the underlying exception where there is one."""

    def notifications_resynced(self) -> None:
        """Notifications may have been lost (the Pub/Sub connection dropped, a cluster's
        slots moved): every reader here catches up from storage."""

    def subscriber_moved(
        self,
        subscription: Subscription,
        was: SubscriberState | None,
        now: SubscriberState | None,
    ) -> None:
        """A subscriber connected (`was` None), switched between replaying and live, or
        disconnected (`now` None)."""

    def subscriber_lagged(self, subscription: Subscription) -> None:
        """A live subscriber fell `max_queue` events behind and was ended."""

    def resumed(
        self,
        subscription: Subscription,
        state: SessionState,
        source: ResumeSource,
        result: ResumeResult,
    ) -> None:
        """A subscription was opened on stored state (a resume, or an attach)."""

    def cancel_finished(
        self, key: str, generation: str, cancelled: bool, stopped: bool, duration_s: float
    ) -> None:
        """`hub.cancel` answered: whether it cancelled a running generation, whether its
        producer was seen to stop, and how long the whole call took."""

    def compacted(self, key: str, generation: str, outcome: str) -> None:
        """A finished generation's compaction: `done`, `skipped`, or `failed`."""

    def finish_hook_ran(self, key: str, generation: str, outcome: str, duration_s: float) -> None:
        """A finish hook ran here: `ok` or `raised`."""

    def source_started(self, producer: Producer, source: str) -> None:
        """A source other than the first started in `producer`'s generation: spawned,
        opened with `source`, or expected for a process to join."""

    def source_ended(self, producer: Producer, source: str, outcome: str) -> None:
        """A source other than the first ended: `done`, `error`, `cancelled`,
        `producer_lost` (its joined process stopped renewing), `not_joined` (no process
        joined in time), or `with_generation` (still running when its generation ended)."""

    def join_answered(self, producer: Producer, source: str, accepted: bool) -> None:
        """The owner of `producer`'s generation accepted or refused another process's
        join as `source` (refused: the name is taken, or the generation is closing)."""

    def steer_sent(self, key: str, outcome: SteerOutcome) -> None:
        """`hub.steer` here answered: `accepted`, or why it refused the message."""

    def steer_delivered(self, producer: Producer, message_id: str, source: str) -> None:
        """The producer of a running generation took a steering message (it is recorded
        as a `steer` event and handed to the generator)."""


class ObserverGroup(Observer):
    """Calls each observer in turn; one that raises is logged and the others still run.
    Its first failure in each method is an error with the traceback, later ones are
    `debug`: it may fail on every writer round."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        for observer in observers:
            if not isinstance(observer, Observer):
                raise TypeError(f"observers must be Observer instances, got {observer!r}")
        self.observers = tuple(observers)
        self._failed: set[tuple[int, str]] = set()

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for index, observer in enumerate(self.observers):
            try:
                getattr(observer, method)(*args, **kwargs)
            except Exception:
                self._report(index, observer, method)

    def _report(self, index: int, observer: Observer, method: str) -> None:
        first = (index, method) not in self._failed
        self._failed.add((index, method))
        logger.log(
            logging.ERROR if first else logging.DEBUG,
            "observer %r failed in %s; the hub goes on",
            observer,
            method,
            exc_info=True,
        )


def _fanned_out(method: Callable[..., None]) -> Callable[..., None]:
    """`method` of `ObserverGroup`: the same call on each of its observers."""
    name = method.__name__

    @functools.wraps(method)
    def each(self: ObserverGroup, *args: Any, **kwargs: Any) -> None:
        self._each(name, *args, **kwargs)

    return each


def _fan_out_every_method() -> None:
    """Every public method of `Observer`: one added there reaches every observer with
    no second list to keep in step."""
    for name, method in list(vars(Observer).items()):
        if callable(method) and not name.startswith("_"):
            setattr(ObserverGroup, name, _fanned_out(method))


_fan_out_every_method()


def combine(observers: Sequence[Observer]) -> Observer | None:
    """The observer the hub calls: None when there is none (the one check)."""
    return ObserverGroup(observers) if observers else None


def root_error(error: BaseException) -> BaseException:
    """The storage client's exception behind our `BackendUnavailableError`, if any."""
    return error.__cause__ if error.__cause__ is not None else error


def _utf8_size(data: str) -> int:
    return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))


def report_round(
    observer: Observer,
    writes: Sequence[tuple[ProducerCore, Append]],
    outcomes: Sequence[AppendOutcome],
    duration_s: float,
) -> None:
    """A writer round was answered: count what storage took (refused writes are not
    "written"), and the round's duration."""
    events = data_bytes = 0
    for (producer, write), outcome in zip(writes, outcomes, strict=True):
        if outcome == "ok":
            events += len(write.events)
            data_bytes += sum(_utf8_size(event.data) for event in write.events)
        elif outcome == "unavailable":
            refused = BackendUnavailableError("storage refused the write for now")
            observer.storage_error("append", "transient", refused)
            observer.write_retried(cast("Producer", producer), refused)
    observer.round_written(events, data_bytes, len(writes), duration_s)


def report_unavailable(
    observer: Observer, writes: Sequence[tuple[ProducerCore, Append]], error: BaseException
) -> None:
    """A writer round found storage away: one storage error, one retry per producer."""
    observer.storage_error("append", "transient", root_error(error))
    for producer, _ in writes:
        observer.write_retried(cast("Producer", producer), error)
