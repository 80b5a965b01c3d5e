"""Prometheus metrics, scraped from `/metrics` after a scripted run: each figure exact.

The run goes through the app's own routes where a figure depends on them (where a
resume's cursor came from) and through the hub's API where the test needs a producer
it can hold still (a cancel, an attach, a lagged reader).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fastapi_streamhub import (
    Observer,
    Producer,
    StreamHub,
    StreamResult,
    SubscriberLaggedError,
    resumable_stream,
)
from fastapi_streamhub._observe import ObserverGroup
from fastapi_streamhub.prometheus import PrometheusObserver, add_metrics_route
from tests.support.observing import write_through_a_pause
from tests.support.polling import eventually
from tests.support.redis_faults import command
from tests.support.redis_server import RedisServer
from tests.support.sse import SSEParser
from tests.support.uvicorn_server import UvicornServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

TOKENS = ["a", "bé", "c"]


def data_bytes(values: list[Any]) -> int:
    """The UTF-8 size of the events' data, as the hub stores it (compact JSON)."""
    return sum(
        len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()) for v in values
    )


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("streamhub_") and not sample.name.endswith("_created"):
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def series(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counters(samples: Samples) -> dict[str, float]:
    """Every counter and gauge series that is not zero, named with its labels."""
    shown: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if value and not name.endswith(("_bucket", "_count", "_sum")):
            label_text = ",".join(f"{k}={v}" for k, v in sorted(labels))
            shown[f"{name}{{{label_text}}}" if label_text else name] = value
    return shown


class MetricsApp:
    """An app with one stream route, a hub observed by a private registry, `/metrics`."""

    def __init__(self, hub_factory: Callable[..., StreamHub], **options: Any) -> None:
        self.registry = CollectorRegistry()
        self.finished: list[StreamResult] = []
        self.hub = hub_factory(
            observers=[PrometheusObserver(registry=self.registry)],
            on_finish=self.finished.append,
            **options,
        )
        self.app = FastAPI(lifespan=self.hub.lifespan)
        add_metrics_route(self.app, registry=self.registry)

        @self.app.post("/chat/{chat_id}")
        @resumable_stream("chat:{chat_id}")
        async def chat(chat_id: str) -> AsyncIterator[str]:
            for token in TOKENS:
                yield token

    def samples(self) -> Samples:
        return parse(generate_latest(self.registry).decode())


@pytest.fixture
def metrics_app(make_hub: Callable[..., StreamHub]) -> MetricsApp:
    return MetricsApp(make_hub)


def sse(text: str) -> list[tuple[str | None, str, Any]]:
    return [(e.event, e.id, json.loads(e.data)) for e in SSEParser().feed(text) if e.data]


async def cancel_a_running_stream(hub: StreamHub) -> None:
    producer, _ = await hub.register("chat:cancelled")
    await producer.publish("x")
    await producer.flush()
    result = await hub.cancel("chat:cancelled", wait=5.0)
    assert result is not None and result.cancelled and result.stopped


async def lag_a_reader(hub: StreamHub) -> None:
    producer, _ = await hub.register("chat:lagged")
    await producer.publish("first")
    async with hub.subscribe("chat:lagged", max_queue=4) as slow:
        iterator = slow.batches()
        assert [e.value for e in await iterator.__anext__()] == ["first"]
        for i in range(10):
            await producer.publish(f"t{i}")
        await producer.close()
        with pytest.raises(SubscriberLaggedError):
            await drain(iterator)


async def drain(iterator: AsyncIterator[Any]) -> None:
    async for _ in iterator:
        pass


def test_a_scripted_run_is_counted_exactly(metrics_app: MetricsApp) -> None:
    hub = metrics_app.hub
    with TestClient(metrics_app.app) as client:
        started = sse(client.post("/chat/done").text)
        generation = started[0][1].split(":")[0]
        assert [value for _, _, value in started[:-1]] == TOKENS

        header = sse(
            client.get("/chat/done/stream", headers={"Last-Event-ID": f"{generation}:2"}).text
        )
        no_content = client.get(f"/chat/done/stream?last_event_id={generation}:4")
        reset = sse(client.get("/chat/done/stream", headers={"Last-Event-ID": "old:3"}).text)
        from_start = sse(client.get("/chat/done/stream").text)
        assert [v for _, _, v in header[:-1]] == ["c"]
        assert no_content.status_code == 204
        assert reset[0][0] == "reset" and len(reset) == 5
        assert len(from_start) == 4

        client.portal.call(cancel_a_running_stream, hub)
        assert client.post("/chat/done/cancel").json()["cancelled"] is False
        client.portal.call(lag_a_reader, hub)

        producer, _ = client.portal.call(hub.register, "chat:attached")
        client.portal.call(producer.publish, "before")

        async def close_once_attached() -> None:
            async def attached() -> bool:
                return (
                    series(metrics_app.samples(), "streamhub_subscribers_connected", state="live")
                    == 1
                )

            await eventually(attached)
            await producer.publish("after")
            await producer.close()

        client.portal.start_task_soon(close_once_attached)
        attached = sse(client.post("/chat/attached").text)
        assert [v for _, _, v in attached[:-1]] == ["before", "after"]

        async def settled() -> bool:
            samples = metrics_app.samples()
            return series(samples, "streamhub_finish_hooks_total", outcome="ok") == 4

        client.portal.call(eventually, settled)
        scraped = client.get("/metrics")

    assert scraped.headers["content-type"].startswith("text/plain")
    samples = parse(scraped.text)
    written = [
        *TOKENS,
        {},  # chat:done
        "x",  # chat:cancelled; its `cancelled` is stored by the cancel, not the writer
        "first",
        *(f"t{i}" for i in range(10)),
        {},  # chat:lagged
        "before",
        "after",
        {},  # chat:attached
    ]
    assert counters(samples) == {
        "streamhub_streams_started_total": 4,
        "streamhub_streams_ended_total{outcome=done}": 3,
        "streamhub_streams_ended_total{outcome=cancelled}": 1,
        "streamhub_written_events_total": len(written),
        "streamhub_written_bytes_total": data_bytes(written),
        "streamhub_resumes_total{result=continued,source=header}": 1,
        "streamhub_resumes_total{result=no_content,source=query}": 1,
        "streamhub_resumes_total{result=reset,source=header}": 1,
        "streamhub_resumes_total{result=from_start,source=none}": 1,
        "streamhub_resumes_total{result=from_start,source=api}": 1,
        "streamhub_resumes_total{result=continued,source=attach}": 1,
        "streamhub_subscribers_lagged_total": 1,
        "streamhub_cancels_total{outcome=stopped}": 1,
        "streamhub_cancels_total{outcome=not_running}": 1,
        "streamhub_finish_hooks_total{outcome=ok}": 4,
    }
    assert series(samples, "streamhub_write_round_events_sum") == len(written)
    rounds = series(samples, "streamhub_write_round_events_count")
    assert 1 <= rounds <= len(written)
    assert series(samples, "streamhub_write_round_duration_seconds_count") == rounds
    assert series(samples, "streamhub_cancel_duration_seconds_count") == 1
    assert series(samples, "streamhub_finish_hook_duration_seconds_count") == 4
    assert len(metrics_app.finished) == 4


@pytest.mark.parametrize("backend_kind", ["redis"])
def test_a_redis_pause_is_counted_as_storage_errors_and_retries(
    backend_kind: str, redis_server: RedisServer
) -> None:
    registry = CollectorRegistry()

    def samples() -> Samples:
        return parse(generate_latest(registry).decode())

    async def retried(producer: Producer) -> bool:
        return series(samples(), "streamhub_write_retries_total") >= 1

    anyio.run(write_through_a_pause, redis_server, PrometheusObserver(registry=registry), retried)
    got = samples()
    errors = {
        dict(labels)["error"]: value
        for (name, labels), value in got.items()
        if name == "streamhub_storage_errors_total"
    }
    assert errors, "a paused Redis must show as storage errors"
    assert set(errors) <= {"TimeoutError", "ConnectionError"}
    assert {
        dict(labels)["operation"]
        for (name, labels) in got
        if name == "streamhub_storage_errors_total"
    } >= {"append"}
    retries = series(got, "streamhub_write_retries_total")
    assert retries >= 1
    assert (
        series(
            got,
            "streamhub_storage_errors_total",
            operation="append",
            failure="transient",
            error="TimeoutError",
        )
        + series(
            got,
            "streamhub_storage_errors_total",
            operation="append",
            failure="transient",
            error="ConnectionError",
        )
        == retries
    )  # one producer: one retry per failed round
    assert series(got, "streamhub_streams_started_total") == 1
    assert series(got, "streamhub_streams_ended_total", outcome="done") == 1
    assert series(got, "streamhub_written_events_total") == 3
    assert series(got, "streamhub_producers_running") == 0


def test_compaction_is_counted(make_hub: Callable[..., StreamHub]) -> None:
    app = MetricsApp(make_hub, compact_after_s=0)
    with TestClient(app.app) as client:
        client.post("/chat/compacted")

        async def compacted() -> bool:
            return series(app.samples(), "streamhub_compactions_total", outcome="done") == 1

        client.portal.call(eventually, compacted)
        samples = parse(client.get("/metrics").text)
    assert series(samples, "streamhub_compactions_total", outcome="done") == 1
    assert series(samples, "streamhub_streams_ended_total", outcome="done") == 1


def test_metrics_add_up_across_uvicorn_workers(
    make_uvicorn_server: Callable[..., UvicornServer], tmp_path: Path
) -> None:
    """prometheus_client's multiprocess mode: whichever worker answers the scrape, the
    figures are those of every worker together."""
    server = make_uvicorn_server(
        "tests.apps.metrics_app:app",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        extra_args=["--workers", "2"],
        ready_path="/metrics",
    )
    workers: set[str] = set()
    streams = 0
    while len(workers) < 2 and streams < 200:  # until both workers have served a stream
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as http:
            answer = http.post(f"/chat/{streams}")
        assert [v for _, _, v in sse(answer.text)] == ["hello", "world", {}]
        workers.add(answer.headers["x-worker-pid"])
        streams += 1
    assert len(workers) == 2, server.logs()
    for _ in range(2):  # both workers' scrapes say the same
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as http:
            samples = parse(http.get("/metrics").text)
        assert counters(samples) == {
            "streamhub_streams_started_total": streams,
            "streamhub_streams_ended_total{outcome=done}": streams,
            "streamhub_written_events_total": 3 * streams,
            "streamhub_written_bytes_total": data_bytes(["hello", "world", {}]) * streams,
        }


class Broken(Observer):
    def round_written(self, events: int, data_bytes: int, writes: int, duration_s: float) -> None:
        raise RuntimeError("the observer broke")


def test_an_observer_that_raises_stops_nothing(
    make_hub: Callable[..., StreamHub], caplog: pytest.LogCaptureFixture
) -> None:
    """The other observers still count, the stream still ends, one error in the log."""
    registry = CollectorRegistry()
    hub = make_hub(observers=[Broken(), PrometheusObserver(registry=registry)])

    async def run() -> list[Any]:
        async with hub:
            producer, _ = await hub.register("chat:observed")
            for token in TOKENS:
                await producer.publish(token)
                await producer.flush()
            await producer.close()
            async with hub.subscribe("chat:observed") as subscription:
                return [event.value async for event in subscription]

    with caplog.at_level(logging.DEBUG, "fastapi_streamhub"):
        assert anyio.run(run) == [*TOKENS, {}]
    samples = parse(generate_latest(registry).decode())
    assert series(samples, "streamhub_written_events_total") == len(TOKENS) + 1
    failures = [r for r in caplog.records if "failed in round_written" in r.getMessage()]
    assert len(failures) >= len(TOKENS)  # each flush is a round of its own
    assert [r.levelno for r in failures] == [logging.ERROR] + [logging.DEBUG] * (len(failures) - 1)


class Recording(Observer):
    """Records every call it gets, by method name, with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_") or name == "calls" or not hasattr(Observer, name):
            return super().__getattribute__(name)
        return lambda *args: self.calls.append((name, args))


def test_a_group_hands_every_observer_method_to_each_observer() -> None:
    """A method added to Observer reaches the configured observers, arguments intact."""
    methods = [name for name in vars(Observer) if not name.startswith("_")]
    first, second = Recording(), Recording()
    group = ObserverGroup([first, second])
    for index, name in enumerate(methods):
        getattr(group, name)(index, name)
    expected = [(name, (index, name)) for index, name in enumerate(methods)]
    assert len(methods) >= 19
    assert first.calls == expected
    assert second.calls == expected


def test_without_observers_the_hub_has_none_to_call() -> None:
    assert StreamHub().config.observer is None
    with pytest.raises(TypeError, match="Observer instances"):
        StreamHub(observers=[object()])  # type: ignore[list-item]


@pytest.mark.parametrize("backend_kind", ["redis"])
def test_a_lost_pubsub_connection_is_counted_as_a_resync(
    backend_kind: str, redis_server: RedisServer
) -> None:
    registry = CollectorRegistry()
    hub = StreamHub.from_url(
        redis_server.url, observers=[PrometheusObserver(registry=registry)], shutdown_grace_s=0.1
    )

    def resyncs() -> float:
        return series(
            parse(generate_latest(registry).decode()), "streamhub_notification_resyncs_total"
        )

    async def run() -> tuple[float, float, list[Any]]:
        async with hub:
            producer, _ = await hub.register("chat:resync")
            await producer.publish("before")
            await producer.flush()  # the listener is subscribed by now
            before = resyncs()
            assert await command(redis_server, "CLIENT", "KILL", "TYPE", "pubsub") == 1

            async def resynced() -> bool:
                return resyncs() > before

            await eventually(resynced)
            await producer.publish("after")
            await producer.close()
            async with hub.subscribe("chat:resync") as subscription:
                return before, resyncs(), [event.value async for event in subscription]

    before, after, values = anyio.run(run)
    assert after == before + 1
    assert values == ["before", "after", {}]
