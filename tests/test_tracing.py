"""OpenTelemetry spans, recorded by the SDK's in-memory exporter (a test dependency only).

A generation's span is recorded where it is produced; a resume's span where it is
served, on another instance of the same Redis where the backend allows it, linked to
the generation's span through the trace context carried in the stream's metadata.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from unittest.mock import ANY

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from fastapi_streamhub import Producer, StreamEvent, StreamHub, resumable_stream
from fastapi_streamhub._events import terminal_data
from fastapi_streamhub.otel import TracingObserver
from fastapi_streamhub.prometheus import PrometheusObserver
from tests.support.observing import write_through_a_pause
from tests.support.redis_server import RedisServer
from tests.support.sse import SSEParser

pytestmark = pytest.mark.anyio


@pytest.fixture
def traced_hub(
    make_hub: Callable[..., StreamHub], provider: TracerProvider
) -> Callable[..., StreamHub]:
    def make(**options: object) -> StreamHub:
        return make_hub(observers=[TracingObserver(tracer_provider=provider)], **options)

    return make


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if (s.name or "").startswith(prefix)]


async def read_all(hub: StreamHub, key: str, after: str | None = None) -> list[StreamEvent]:
    with anyio.fail_after(10):
        async with hub.subscribe(key, after=after) as subscription:
            return [event async for event in subscription]


async def test_a_resume_on_another_instance_links_to_the_generation(
    traced_hub: Callable[..., StreamHub],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    backend_kind: str,
) -> None:
    async with traced_hub() as a, traced_hub() as b:
        serving = a if backend_kind == "memory" else b
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("POST /chat/1") as request_span:
            producer, _ = await a.register("chat:1")
        await producer.publish("a")
        await producer.publish("b")
        await producer.close()
        events = await read_all(serving, "chat:1", after=f"{producer.generation}:1")
        status = await serving.status("chat:1")

    (generation,) = named(exporter, "streamhub.generation")
    span_context = generation.get_span_context()
    trace_id, span_id = span_context.trace_id, span_context.span_id
    traceparent = f"00-{trace_id:032x}-{span_id:016x}-{span_context.trace_flags:02x}"
    assert [(e.event, e.value) for e in events] == [
        (None, "b"),
        ("done", {"traceparent": traceparent}),
    ]
    (resume,) = named(exporter, "streamhub.resume")
    assert generation.name == "streamhub.generation chat:1"
    assert generation.kind is SpanKind.PRODUCER
    assert generation.parent is not None
    assert generation.parent.span_id == request_span.get_span_context().span_id
    assert dict(generation.attributes or {}) == {
        "gen_ai.conversation.id": "chat:1",
        "streamhub.generation": producer.generation,
        "streamhub.events": 3,
        "streamhub.outcome": "done",
        "streamhub.sources": 1,
    }
    assert generation.status.status_code is StatusCode.UNSET
    assert resume.kind is SpanKind.CONSUMER
    assert dict(resume.attributes or {}) == {
        "gen_ai.conversation.id": "chat:1",
        "streamhub.generation": producer.generation,
        "streamhub.resume.source": "api",
        "streamhub.resume.result": "continued",
    }
    assert [link.context.span_id for link in resume.links] == [
        generation.get_span_context().span_id
    ]
    assert resume.links[0].context.trace_id == generation.get_span_context().trace_id
    assert status is not None and status.metadata == {"traceparent": traceparent}


async def test_a_cancel_is_an_event_on_the_generation_span(
    traced_hub: Callable[..., StreamHub], exporter: InMemorySpanExporter
) -> None:
    async with traced_hub() as hub:
        producer, _ = await hub.register("chat:stop")
        await producer.publish("x")
        result = await hub.cancel("chat:stop", wait=5.0)
    assert result is not None and result.stopped
    (span,) = named(exporter, "streamhub.generation")
    assert [e.name for e in span.events] == ["streamhub.cancel"]
    assert (span.attributes or {})["streamhub.outcome"] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET


async def test_a_lost_lease_is_an_event_and_an_error(
    traced_hub: Callable[..., StreamHub], exporter: InMemorySpanExporter, backend_kind: str
) -> None:
    """Storage forgot the key (evicted, flushed) and another producer claimed it."""
    async with traced_hub() as a, traced_hub() as b:
        usurping = a if backend_kind == "memory" else b
        producer, _ = await a.register("chat:lost")
        await producer.publish("mine")
        await producer.flush()
        await a.backend.remove("chat:lost")
        usurper, created = await usurping.register("chat:lost")
        assert created
        if producer.stop_reason is None:  # the same hub found it stale as it claimed
            await producer.publish("refused")
        assert await producer.wait() == "stale"
        await usurper.close()
    spans = {
        (s.attributes or {})["streamhub.generation"]: s
        for s in named(exporter, "streamhub.generation")
    }
    lost = spans[producer.generation]
    assert [e.name for e in lost.events] == ["streamhub.lease_lost"]
    assert lost.status.status_code is StatusCode.ERROR
    assert spans[usurper.generation].status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_storage_retries_are_events_on_the_generation_span(
    backend_kind: str,
    redis_server: RedisServer,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:

    async def retried(producer: Producer) -> bool:
        return producer._unavailable_since is not None

    await write_through_a_pause(redis_server, TracingObserver(tracer_provider=provider), retried)
    (span,) = named(exporter, "streamhub.generation")
    retries = [e for e in span.events if e.name == "streamhub.storage_retry"]
    assert retries
    assert {(e.attributes or {})["error.type"] for e in retries} == {"BackendUnavailableError"}
    assert (span.attributes or {})["streamhub.outcome"] == "done"
    assert (span.attributes or {})["streamhub.events"] == 3


async def test_without_an_sdk_nothing_is_recorded_or_carried(
    make_hub: Callable[..., StreamHub],
) -> None:
    """The API alone (no SDK configured) gives spans that record nothing: no trace
    context goes into the stream's metadata either."""
    async with make_hub(observers=[TracingObserver()]) as hub:
        producer, _ = await hub.register("chat:untraced")
        await producer.publish("a")
        await producer.close()
        status = await hub.status("chat:untraced")
        events = await read_all(hub, "chat:untraced")
    assert status is not None and status.metadata == {}
    assert [(e.event, e.value) for e in events] == [(None, "a"), ("done", {})]


def traced_app(url: str, provider: TracerProvider) -> FastAPI:
    hub = StreamHub.from_url(
        url, observers=[TracingObserver(tracer_provider=provider)], shutdown_grace_s=0.1
    )
    app = FastAPI(lifespan=hub.lifespan)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(chat_id: str) -> AsyncIterator[str]:
        for token in ("a", "b", "c"):
            yield token

    return app


@pytest.mark.parametrize("backend_kind", ["redis", "cluster"])
def test_a_resume_through_another_apps_route_links_to_the_generation(
    backend_kind: str, request: pytest.FixtureRequest
) -> None:
    """Two apps on one Redis, each with its own tracer: the `POST` on A, the resume with
    `Last-Event-ID` on B; B's span links to A's across the two providers."""
    url = (
        request.getfixturevalue("redis_url")
        if backend_kind == "redis"
        else request.getfixturevalue("shared_redis_cluster").url
    )
    exporters = {name: InMemorySpanExporter() for name in "AB"}
    providers = {name: TracerProvider() for name in "AB"}
    for name, provider in providers.items():
        provider.add_span_processor(SimpleSpanProcessor(exporters[name]))
    apps = {name: traced_app(url, providers[name]) for name in "AB"}
    with TestClient(apps["A"]) as a, TestClient(apps["B"]) as b:
        started = SSEParser().feed(a.post("/chat/linked").text)
        first = started[0].id
        resumed = SSEParser().feed(
            b.get("/chat/linked/stream", headers={"Last-Event-ID": first}).text
        )
    assert [json.loads(e.data) for e in resumed if e.data] == ["b", "c", {"traceparent": ANY}]
    (generation,) = named(exporters["A"], "streamhub.generation")
    (resume,) = named(exporters["B"], "streamhub.resume")
    assert not named(exporters["B"], "streamhub.generation")
    assert (resume.attributes or {})["streamhub.resume.source"] == "header"
    assert (resume.attributes or {})["streamhub.resume.result"] == "continued"
    assert [(link.context.trace_id, link.context.span_id) for link in resume.links] == [
        (generation.get_span_context().trace_id, generation.get_span_context().span_id)
    ]


async def test_a_lease_found_gone_at_renewal_is_an_event_and_a_count(
    make_hub: Callable[..., StreamHub],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    backend_kind: str,
) -> None:
    """Storage ended the generation as lost (what another instance's watchdog does when
    this process stalls past its lease): the producer learns it at its next renewal."""
    registry = CollectorRegistry()
    observers = [TracingObserver(tracer_provider=provider), PrometheusObserver(registry=registry)]
    async with make_hub(lease_ttl_s=1.0, observers=observers) as a, make_hub() as b:
        other = a if backend_kind == "memory" else b
        producer, _ = await a.register("chat:stalled")
        await producer.publish("x")
        await producer.flush()
        ended, _ = await other.backend.finish(
            "chat:stalled",
            generation=producer.generation,
            event="error",
            data=terminal_data(message="The stream's producer was lost.", reason="producer_lost"),
            retention_ms=60_000,
            only_if_lapsed=False,
        )
        assert ended
        with anyio.fail_after(10):
            assert await producer.wait() == "error"
    (span,) = named(exporter, "streamhub.generation")
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("streamhub.lease_lost", {"streamhub.lease.outcome": "error"})
    ]
    assert span.status.status_code is StatusCode.ERROR
    lost = registry.get_sample_value("streamhub_leases_lost_total", {"outcome": "error"})
    assert lost == 1
