"""Metrics and traces of fan-in and steering (issue 15 over issue 11), each figure exact.

On Redis and Cluster a second hub on the same storage joins and steers, as another
instance would; both hubs share one observer, as the hubs of one process do. On the
memory backend the owner's hub does it all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack

import anyio
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from fastapi_streamhub import (
    BackendUnavailableError,
    InboxFullError,
    JoinRefusedError,
    MessageTooLargeError,
    NotRunningError,
    Observer,
    Producer,
    SessionNotFoundError,
    StreamHub,
)
from fastapi_streamhub._inbox import MAX_INBOX_MESSAGES
from fastapi_streamhub.otel import TracingObserver
from fastapi_streamhub.prometheus import PrometheusObserver
from tests.support.fan_in import paced
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.streams import stalled
from tests.test_backend_contract import claim
from tests.test_metrics import MetricsApp, counters, parse

JSON = {"content-type": "application/json"}

pytestmark = pytest.mark.anyio

Hubs = tuple[StreamHub, StreamHub]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def two_instances(
    stack: AsyncExitStack, make_hub: Callable[..., StreamHub], backend_kind: str, observer: Observer
) -> Hubs:
    """(the owner's hub, another instance's) sharing `observer`."""
    owner = await stack.enter_async_context(make_hub(lease_ttl_s=2.0, observers=[observer]))
    if backend_kind == "memory":
        return owner, owner
    other = await stack.enter_async_context(make_hub(lease_ttl_s=2.0, observers=[observer]))
    return owner, other


async def failing() -> AsyncGenerator[str, None]:
    yield "partial"
    raise RuntimeError("the tool broke")


async def ended(producer: Producer, source: str) -> None:
    async def check() -> bool:
        return source in producer.ended_sources

    await eventually(check)


async def test_sources_and_joins_are_counted_by_outcome(
    make_hub: Callable[..., StreamHub], backend_kind: str, registry: CollectorRegistry
) -> None:
    async with AsyncExitStack() as stack:
        owner, other = await two_instances(
            stack, make_hub, backend_kind, PrometheusObserver(registry=registry)
        )
        producer, _ = await owner.register("fan")
        producer.spawn("search", paced(["s1", "s2"]))
        producer.spawn("broken", failing())
        producer.expect("late", within_s=0.3)
        async with other.join("fan", source="worker") as joined:
            await joined.publish("w1")
        await ended(producer, "search")
        with pytest.raises(JoinRefusedError):
            await other.join("fan", source="search", accept_timeout_s=1.0).open()
        assert await producer.close() == "done"

        cut, _ = await owner.register("cut")
        started, cleaned_up = anyio.Event(), anyio.Event()
        cut.spawn("slow", stalled(started, cleaned_up))
        await started.wait()
        outcome = await owner.cancel("cut", wait=5.0)
        assert outcome is not None and outcome.stopped

        first, _ = await owner.register("first")
        first.ends_with = "first"
        started, cleaned_up = anyio.Event(), anyio.Event()
        first.spawn("long", stalled(started, cleaned_up))
        await started.wait()
        assert await first.close() == "done"

        lost, _ = await owner.register("lost")
        halted = await other.join("lost", source="w", lease_s=0.5).open()
        await halted.publish("before it stalls")
        halted._halt()  # this process stalls: no more posts, no heartbeat
        await ended(lost, "w")
        assert await lost.close() == "done"
        await halted.aclose()

    got = counters(parse(generate_latest(registry).decode()))
    assert {
        name: value
        for name, value in got.items()
        if name.startswith(("streamhub_sources", "streamhub_joins"))
    } == {
        "streamhub_sources_started_total": 7,
        "streamhub_sources_ended_total{outcome=done}": 2,
        "streamhub_sources_ended_total{outcome=error}": 1,
        "streamhub_sources_ended_total{outcome=not_joined}": 1,
        "streamhub_sources_ended_total{outcome=producer_lost}": 1,
        "streamhub_sources_ended_total{outcome=with_generation}": 1,
        "streamhub_sources_ended_total{outcome=cancelled}": 1,
        "streamhub_joins_total{outcome=accepted}": 2,
        "streamhub_joins_total{outcome=refused}": 1,
    }
    assert got["streamhub_streams_ended_total{outcome=done}"] == 3
    assert got["streamhub_streams_ended_total{outcome=cancelled}"] == 1


async def test_steering_messages_are_counted_where_sent_and_where_delivered(
    make_hub: Callable[..., StreamHub], backend_kind: str, registry: CollectorRegistry
) -> None:
    async with AsyncExitStack() as stack:
        owner, other = await two_instances(
            stack, make_hub, backend_kind, PrometheusObserver(registry=registry)
        )
        producer, _ = await owner.register("steered")
        await other.steer("steered", {"go": "left"})
        await other.steer("steered", {"go": "right"}, source="client")
        messages = producer.messages()
        assert [(await anext(messages)).data for _ in range(2)] == [
            {"go": "left"},
            {"go": "right"},
        ]
        with pytest.raises(SessionNotFoundError):
            await other.steer("nobody", "hello")
        with pytest.raises(MessageTooLargeError):
            await other.steer("steered", "x" * (owner.config.max_message_bytes + 1))
        with pytest.raises(TypeError):
            await other.steer("steered", {"not json": object()})
        await producer.close()
        with pytest.raises(NotRunningError):
            await other.steer("steered", "too late")

    got = counters(parse(generate_latest(registry).decode()))
    assert {name: value for name, value in got.items() if "steering" in name} == {
        "streamhub_steering_messages_total{outcome=accepted}": 2,
        "streamhub_steering_messages_total{outcome=not_found}": 1,
        "streamhub_steering_messages_total{outcome=too_large}": 1,
        "streamhub_steering_messages_total{outcome=invalid}": 1,
        "streamhub_steering_messages_total{outcome=not_running}": 1,
        "streamhub_steering_messages_delivered_total": 2,
    }


async def test_the_generation_span_counts_sources_and_records_their_ends_and_steers(
    make_hub: Callable[..., StreamHub],
    backend_kind: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    async with AsyncExitStack() as stack:
        owner, other = await two_instances(
            stack, make_hub, backend_kind, TracingObserver(tracer_provider=provider)
        )
        producer, _ = await owner.register("traced")
        producer.spawn("search", paced(["s1"]))
        await ended(producer, "search")
        steered = await other.steer("traced", {"go": "left"}, source="client")
        assert (await anext(producer.messages())).id == steered.id
        producer.expect("late", within_s=0.1)
        await producer.publish("answer")
        assert await producer.close() == "done"

    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("streamhub.gen")]
    assert (span.attributes or {})["streamhub.sources"] == 3
    assert (span.attributes or {})["streamhub.events"] == producer.seq
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "streamhub.source_ended",
            {"streamhub.source": "search", "streamhub.source.outcome": "done"},
        ),
        ("streamhub.steer", {"streamhub.steer.id": steered.id, "streamhub.steer.source": "client"}),
        (
            "streamhub.source_ended",
            {"streamhub.source": "late", "streamhub.source.outcome": "not_joined"},
        ),
    ]


async def test_a_full_inbox_refuses_steering_and_is_counted(
    make_hub: Callable[..., StreamHub], registry: CollectorRegistry
) -> None:
    """A session running with no producer reading its inbox (one claimed in storage
    only) takes `MAX_INBOX_MESSAGES` messages, then refuses: `full`."""
    async with make_hub(observers=[PrometheusObserver(registry=registry)]) as hub:
        assert await claim(hub.backend, "orphan", "g1")
        for i in range(MAX_INBOX_MESSAGES):
            await hub.steer("orphan", i)
        with pytest.raises(InboxFullError):
            await hub.steer("orphan", "one too many")
    got = counters(parse(generate_latest(registry).decode()))
    assert {name: value for name, value in got.items() if "steering" in name} == {
        "streamhub_steering_messages_total{outcome=accepted}": MAX_INBOX_MESSAGES,
        "streamhub_steering_messages_total{outcome=full}": 1,
    }


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_steering_while_redis_is_frozen_is_counted_as_unavailable(
    backend_kind: str, redis_server: RedisServer, registry: CollectorRegistry
) -> None:
    hub = StreamHub.from_url(
        redis_server.url,
        socket_timeout_s=0.3,
        shutdown_grace_s=0.1,
        observers=[PrometheusObserver(registry=registry)],
    )
    async with hub:
        producer, _ = await hub.register("frozen")
        redis_server.pause()
        try:
            with pytest.raises(BackendUnavailableError):
                await hub.steer("frozen", "hello")
        finally:
            redis_server.resume()
        await hub.steer("frozen", "again")
        taken = []
        async for message in producer.messages():
            taken.append(message.data)
            if message.data == "again":
                break
        await producer.close()
    # A post Redis got before it froze runs once it thaws: "unavailable" means the sender
    # cannot know, not that the message was lost.
    assert taken in (["again"], ["hello", "again"])
    got = counters(parse(generate_latest(registry).decode()))
    assert {name: value for name, value in got.items() if "steering" in name} == {
        "streamhub_steering_messages_total{outcome=unavailable}": 1,
        "streamhub_steering_messages_total{outcome=accepted}": 1,
        "streamhub_steering_messages_delivered_total": len(taken),
    }


def test_the_steer_route_counts_what_it_refuses_before_the_hub(
    make_hub: Callable[..., StreamHub],
) -> None:
    """A body over `max_message_bytes` (413) or not JSON (422) is refused by the route
    itself; it counts as `hub.steer` would, and a message that gets through as accepted
    or refused by the stream."""
    app = MetricsApp(make_hub)
    with TestClient(app.app) as client:
        assert client.post("/chat/1").status_code == 200
        big = json.dumps("x" * app.hub.config.max_message_bytes)
        answers = [
            client.post("/chat/1/steer", content=big, headers=JSON).status_code,
            client.post("/chat/1/steer", content=b"{not json", headers=JSON).status_code,
            client.post("/chat/1/steer", json="too late").status_code,
            client.post("/chat/nobody/steer", json="hello").status_code,
        ]
    assert answers == [413, 422, 409, 404]
    got = counters(app.samples())
    assert {name: value for name, value in got.items() if "steering" in name} == {
        "streamhub_steering_messages_total{outcome=too_large}": 1,
        "streamhub_steering_messages_total{outcome=invalid}": 1,
        "streamhub_steering_messages_total{outcome=not_running}": 1,
        "streamhub_steering_messages_total{outcome=not_found}": 1,
    }
