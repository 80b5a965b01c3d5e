"""The hub's metrics in Prometheus form: one `Observer` that counts what the hub reports.

Names follow Prometheus conventions (base units, `_total` counters, `_seconds` and
`_bytes`). Gauges are `livesum`, so that under prometheus_client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, one process per uvicorn or gunicorn worker) a scrape adds
up the live workers' values; counters and histograms add up by themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from .._observe import (
    FailureClass,
    Observer,
    ResumeResult,
    ResumeSource,
    SteerOutcome,
    SubscriberState,
)

if TYPE_CHECKING:
    from .._producer import Producer
    from .._subscription import Subscription
    from ..backends._base import SessionState

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ROUND_EVENTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_HOOK_SECONDS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)


class PrometheusObserver(Observer):
    """Counts streams, subscribers, writes, storage errors, resumes and cancels.

    Create one per process and give it to every hub of the process
    (`StreamHub(observers=[PrometheusObserver()])`): its metrics are registered in
    `registry` (prometheus_client's default one unless given), and a registry takes
    each name once.
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = REGISTRY, namespace: str = "streamhub"
    ) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(
                name,
                doc,
                labels,
                namespace=namespace,
                registry=registry,
                multiprocess_mode="livesum",
            )

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, namespace=namespace, registry=registry, buckets=buckets)

        self.streams_started = counter("streams_started", "Generations this process started.")
        self.streams_ended = counter(
            "streams_ended", "Generations ended, by outcome.", ("outcome",)
        )
        self.producers_running = gauge("producers_running", "Producers running in this process.")
        self.subscribers = gauge(
            "subscribers_connected", "Subscribers connected, replaying or live.", ("state",)
        )
        self.events_written = counter("written_events", "Events stored by the writer.")
        self.bytes_written = counter("written_bytes", "Event data stored, in UTF-8 bytes.")
        self.round_duration = histogram(
            "write_round_duration_seconds", "Duration of one writer round's storage call.", _SECONDS
        )
        self.round_events = histogram(
            "write_round_events", "Events one writer round stored.", _ROUND_EVENTS
        )
        self.leases_lost = counter(
            "leases_lost",
            "Producers that found their lease gone at a renewal, by outcome.",
            ("outcome",),
        )
        self.write_retries = counter(
            "write_retries", "Producer writes kept for a retry because storage was away."
        )
        self.storage_errors = counter(
            "storage_errors",
            "Failed storage calls, by operation, failure class and error type.",
            ("operation", "failure", "error"),
        )
        self.resyncs = counter(
            "notification_resyncs",
            "Times notifications may have been lost (Pub/Sub reconnected, slots moved).",
        )
        self.subscribers_lagged = counter(
            "subscribers_lagged", "Live subscribers ended because they fell behind."
        )
        self.resumes = counter(
            "resumes",
            "Subscriptions opened on stored state, by cursor source and result.",
            ("source", "result"),
        )
        self.cancels = counter("cancels", "Cancel calls answered, by outcome.", ("outcome",))
        self.cancel_duration = histogram(
            "cancel_duration_seconds", "Duration of cancels that stopped a generation.", _SECONDS
        )
        self.compactions = counter("compactions", "Compactions, by outcome.", ("outcome",))
        self.finish_hooks = counter("finish_hooks", "Finish hooks run, by outcome.", ("outcome",))
        self.finish_hook_duration = histogram(
            "finish_hook_duration_seconds", "Duration of finish hooks.", _HOOK_SECONDS
        )
        self.sources_started = counter(
            "sources_started", "Sources started beyond a generation's first (spawned, joined)."
        )
        self.sources_ended = counter(
            "sources_ended", "Sources beyond a generation's first ended, by outcome.", ("outcome",)
        )
        self.joins = counter(
            "joins", "Joins of another process answered by the owner, by outcome.", ("outcome",)
        )
        self.steers = counter(
            "steering_messages",
            "Steering messages sent from this process, by outcome (accepted or why refused).",
            ("outcome",),
        )
        self.steers_delivered = counter(
            "steering_messages_delivered", "Steering messages taken by producers of this process."
        )

    def stream_started(self, producer: Producer) -> None:
        self.streams_started.inc()
        self.producers_running.inc()

    def stream_ended(self, producer: Producer, outcome: str) -> None:
        self.streams_ended.labels(outcome).inc()
        self.producers_running.dec()

    def stream_lost(self, key: str, generation: str, reason: str) -> None:
        self.streams_ended.labels(reason).inc()

    def round_written(self, events: int, data_bytes: int, writes: int, duration_s: float) -> None:
        self.events_written.inc(events)
        self.bytes_written.inc(data_bytes)
        self.round_duration.observe(duration_s)
        self.round_events.observe(events)

    def lease_lost(self, producer: Producer, outcome: str) -> None:
        self.leases_lost.labels(outcome).inc()

    def write_retried(self, producer: Producer, error: BaseException) -> None:
        self.write_retries.inc()

    def storage_error(self, operation: str, failure: FailureClass, error: BaseException) -> None:
        self.storage_errors.labels(operation, failure, type(error).__name__).inc()

    def notifications_resynced(self) -> None:
        self.resyncs.inc()

    def subscriber_moved(
        self,
        subscription: Subscription,
        was: SubscriberState | None,
        now: SubscriberState | None,
    ) -> None:
        if was is not None:
            self.subscribers.labels(was).dec()
        if now is not None:
            self.subscribers.labels(now).inc()

    def subscriber_lagged(self, subscription: Subscription) -> None:
        self.subscribers_lagged.inc()

    def resumed(
        self,
        subscription: Subscription,
        state: SessionState,
        source: ResumeSource,
        result: ResumeResult,
    ) -> None:
        self.resumes.labels(source, result).inc()

    def cancel_finished(
        self, key: str, generation: str, cancelled: bool, stopped: bool, duration_s: float
    ) -> None:
        if not cancelled:
            self.cancels.labels("not_running").inc()
            return
        self.cancels.labels("stopped" if stopped else "unconfirmed").inc()
        self.cancel_duration.observe(duration_s)

    def compacted(self, key: str, generation: str, outcome: str) -> None:
        self.compactions.labels(outcome).inc()

    def finish_hook_ran(self, key: str, generation: str, outcome: str, duration_s: float) -> None:
        self.finish_hooks.labels(outcome).inc()
        self.finish_hook_duration.observe(duration_s)

    def source_started(self, producer: Producer, source: str) -> None:
        self.sources_started.inc()

    def source_ended(self, producer: Producer, source: str, outcome: str) -> None:
        self.sources_ended.labels(outcome).inc()

    def join_answered(self, producer: Producer, source: str, accepted: bool) -> None:
        self.joins.labels("accepted" if accepted else "refused").inc()

    def steer_sent(self, key: str, outcome: SteerOutcome) -> None:
        self.steers.labels(outcome).inc()

    def steer_delivered(self, producer: Producer, message_id: str, source: str) -> None:
        self.steers_delivered.inc()
