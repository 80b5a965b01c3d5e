"""What the metrics and tracing tests share: spans recorded in memory, and a write that
storage keeps refusing for a while (a paused redis-server).

Its fixtures (`exporter`, `provider`: a TracerProvider recording into an in-memory
exporter) are loaded by `tests/conftest.py` via `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from fastapi_streamhub import Observer, Producer, StreamHub
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Imported here, not at the top: every test run loads this module, and the floor
    run (`make test-floor`) installs no OpenTelemetry."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def write_through_a_pause(
    redis_server: RedisServer,
    observer: Observer,
    retried: Callable[[Producer], Awaitable[bool]],
) -> Producer:
    """Produce `chat:paused` on `redis_server` with `observer`: one event stored, then
    one written while the server is paused until `retried` says the write was kept for
    a retry, then the end once it is back. Short socket timeouts make the pause show."""
    hub = StreamHub.from_url(
        redis_server.url,
        socket_timeout_s=0.3,
        observers=[observer],
        lease_ttl_s=30.0,
        shutdown_grace_s=0.1,
    )
    async with hub:
        producer, _ = await hub.register("chat:paused")
        await producer.publish("before")
        await producer.flush()
        redis_server.pause()
        try:
            await producer.publish("during")
            await eventually(lambda: retried(producer))
        finally:
            redis_server.resume()
        await producer.close()
    return producer
