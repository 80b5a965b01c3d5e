"""Traces of the hub: a span per generation where it is produced, a span per resume
where it is served, linked to each other across instances.

The generation's span starts when this process starts producing (as a child of the
request that started it, if that request is traced) and ends with the generation's
end. Its W3C trace context goes into the stream's metadata (`traceparent`) with the
first write, so the instance that serves a resume, which reads the stream's state to
open it anyway, links its resume span to the generation's span at no extra cost.

With no OpenTelemetry SDK configured, the API's tracer records nothing and its spans
have no valid context: then nothing is carried in the metadata either.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._observe import Observer, ResumeResult, ResumeSource, SubscriberState

if TYPE_CHECKING:
    from .._producer import Producer
    from .._subscription import Subscription
    from ..backends._base import SessionState

CONVERSATION_ID = "gen_ai.conversation.id"
"""GenAI semantic conventions: the stream key is the conversation a generation belongs to."""
GENERATION = "streamhub.generation"
EVENTS = "streamhub.events"
OUTCOME = "streamhub.outcome"
RESUME_SOURCE = "streamhub.resume.source"
RESUME_RESULT = "streamhub.resume.result"
SOURCES = "streamhub.sources"
SOURCE = "streamhub.source"
SOURCE_OUTCOME = "streamhub.source.outcome"
STEER_ID = "streamhub.steer.id"
STEER_SOURCE = "streamhub.steer.source"

_FAILED = frozenset({"error", "unavailable", "failed", "stale"})
_STOP_EVENTS = {"cancelled": "streamhub.cancel", "stale": "streamhub.lease_lost"}
_propagator = TraceContextTextMapPropagator()


class TracingObserver(Observer):
    """Records generation and resume spans through OpenTelemetry's API.

    `tracer_provider` is the global one unless given; configure the SDK (an exporter,
    a sampler) as for the rest of the app. Give the same observer to every hub of
    the process: `StreamHub(observers=[TracingObserver()])`.
    """

    def __init__(self, *, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer = trace.get_tracer(
            "fastapi_streamhub", tracer_provider=tracer_provider
        )
        self._generations: weakref.WeakKeyDictionary[Producer, Span] = weakref.WeakKeyDictionary()
        self._resumes: weakref.WeakKeyDictionary[Subscription, Span] = weakref.WeakKeyDictionary()
        self._lost: weakref.WeakSet[Producer] = weakref.WeakSet()

    def stream_started(self, producer: Producer) -> None:
        span = self._tracer.start_span(
            f"streamhub.generation {producer.key}",
            kind=SpanKind.PRODUCER,
            attributes={CONVERSATION_ID: producer.key, GENERATION: producer.generation},
        )
        self._generations[producer] = span
        if span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            _propagator.inject(carrier, context=trace.set_span_in_context(span))
            producer._carry(carrier)

    def stream_ended(self, producer: Producer, outcome: str) -> None:
        span = self._generations.pop(producer, None)
        if span is None:
            return
        if outcome in _STOP_EVENTS and producer not in self._lost:
            span.add_event(_STOP_EVENTS[outcome])
        span.set_attribute(EVENTS, producer.seq)
        span.set_attribute(SOURCES, producer.source_count)
        span.set_attribute(OUTCOME, outcome)
        if outcome in _FAILED:
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()

    def lease_lost(self, producer: Producer, outcome: str) -> None:
        span = self._generations.get(producer)
        if span is not None and producer not in self._lost:
            self._lost.add(producer)
            span.add_event("streamhub.lease_lost", {"streamhub.lease.outcome": outcome})

    def write_retried(self, producer: Producer, error: BaseException) -> None:
        span = self._generations.get(producer)
        if span is not None:
            span.add_event(
                "streamhub.storage_retry",
                {"error.type": type(error).__name__, "error.message": str(error)},
            )

    def source_ended(self, producer: Producer, source: str, outcome: str) -> None:
        span = self._generations.get(producer)
        if span is not None:
            span.add_event("streamhub.source_ended", {SOURCE: source, SOURCE_OUTCOME: outcome})

    def steer_delivered(self, producer: Producer, message_id: str, source: str) -> None:
        span = self._generations.get(producer)
        if span is not None:
            span.add_event("streamhub.steer", {STEER_ID: message_id, STEER_SOURCE: source})

    def resumed(
        self,
        subscription: Subscription,
        state: SessionState,
        source: ResumeSource,
        result: ResumeResult,
    ) -> None:
        span = self._tracer.start_span(
            f"streamhub.resume {subscription.key}",
            kind=SpanKind.CONSUMER,
            links=_generation_link(state),
            attributes={
                CONVERSATION_ID: subscription.key,
                GENERATION: state.generation,
                RESUME_SOURCE: source,
                RESUME_RESULT: result,
            },
        )
        if result == "no_content":
            span.end()
        else:
            self._resumes[subscription] = span

    def subscriber_lagged(self, subscription: Subscription) -> None:
        span = self._resumes.get(subscription)
        if span is not None:
            span.add_event("streamhub.lagged")

    def subscriber_moved(
        self,
        subscription: Subscription,
        was: SubscriberState | None,
        now: SubscriberState | None,
    ) -> None:
        if now is None and (span := self._resumes.pop(subscription, None)) is not None:
            span.end()


def _generation_link(state: SessionState) -> list[Link]:
    """A link to the span of the generation `state` holds, from its carried context."""
    try:
        metadata = json.loads(state.metadata or "{}")
    except ValueError:
        return []
    if not isinstance(metadata, dict) or not isinstance(metadata.get("traceparent"), str):
        return []
    carrier = {name: metadata[name] for name in ("traceparent", "tracestate") if name in metadata}
    context = trace.get_current_span(_propagator.extract(carrier)).get_span_context()
    return [Link(context)] if context.is_valid else []
