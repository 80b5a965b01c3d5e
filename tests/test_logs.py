"""Log records about a stream name its key and generation, in the text and as fields;
their levels are deliberate (a slow or leaving client is not a warning)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from fastapi_streamhub import JoinRefusedError, ProducerStoppedError, StreamHub, StreamResult
from fastapi_streamhub._inbox import InboxMessage, post
from fastapi_streamhub._keys import KeySpace
from fastapi_streamhub._runner import drive
from tests.support.polling import eventually
from tests.support.redis_faults import command
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def raising() -> AsyncIterator[object]:
    yield "first"
    raise RuntimeError("the model broke")


async def unsendable() -> AsyncIterator[object]:
    yield object()


def broken_hook(result: StreamResult) -> None:
    raise RuntimeError("the hook broke")


async def run(hub: StreamHub, key: str, generator: AsyncIterator[object]) -> str:
    producer, _ = await hub.register(key)
    hub.spawn(producer, lambda: drive(producer, generator))  # type: ignore[arg-type]
    await producer.wait()
    return producer.generation


async def test_every_record_about_a_stream_names_it(
    make_hub: Callable[..., StreamHub], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "fastapi_streamhub")
    generations: dict[str, str] = {}
    async with make_hub(max_events=3, on_finish=broken_hook) as hub:
        generations["chat:raised"] = await run(hub, "chat:raised", raising())
        generations["chat:unsendable"] = await run(hub, "chat:unsendable", unsendable())
        limited, _ = await hub.register("chat:limited")
        generations["chat:limited"] = limited.generation
        await limited.publish("a")
        await limited.publish("b")
        with pytest.raises(ProducerStoppedError, match="limit of 3 events"):
            await limited.publish("c")

        async def hooks_ran() -> bool:
            return sum("the finish hook raised" in r.getMessage() for r in caplog.records) == 3

        await eventually(hooks_ran)
        running, _ = await hub.register("chat:shutdown")
        generations["chat:shutdown"] = running.generation
    stream_records = [r for r in caplog.records if r.getMessage().startswith("stream ")]
    assert stream_records
    for record in stream_records:
        key, generation = record.stream_key, record.generation  # type: ignore[attr-defined]
        assert record.getMessage().startswith(f"stream {key!r} (generation {generation}): ")
        assert generations[key] == generation
    seen = {
        (r.stream_key, r.levelname, r.getMessage().split(": ", 1)[1])  # type: ignore[attr-defined]
        for r in stream_records
    }
    assert ("chat:raised", "ERROR", "the producer raised") in seen
    assert ("chat:shutdown", "WARNING", "cancelled by shutdown") in seen
    assert ("chat:raised", "DEBUG", "started") in seen
    assert ("chat:raised", "DEBUG", "ended (error, 2 events)") in seen
    assert any(key == "chat:unsendable" and level == "ERROR" for key, level, _ in seen)
    assert any(key == "chat:limited" and "limit of 3 events" in text for key, _, text in seen)


async def test_a_lagged_reader_is_not_a_warning(
    make_hub: Callable[..., StreamHub], caplog: pytest.LogCaptureFixture
) -> None:
    """Through the route's response body, where the lag is logged."""
    from fastapi_streamhub._sse import sse_response

    caplog.set_level(logging.DEBUG, "fastapi_streamhub")
    async with make_hub() as hub:
        producer, _ = await hub.register("chat:slow")
        await producer.publish("first")
        subscription = await hub.subscribe("chat:slow", max_queue=2).open()
        response = sse_response(subscription, hub.config, hub.send_guard)
        body = response.body_iterator
        chunks = [await body.__anext__(), await body.__anext__()]  # type: ignore[union-attr]
        for i in range(5):
            await producer.publish(i)
        await producer.flush()
        with anyio.fail_after(5):
            chunks += [chunk async for chunk in body]  # type: ignore[union-attr]
        await producer.close()
    assert chunks[-1] == (
        b": lagged: the client read too slowly; resume from the last event id\n\n"
    )
    (record,) = [r for r in caplog.records if "fell more than" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert (record.stream_key, record.generation) == ("chat:slow", producer.generation)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def stream_records(caplog: pytest.LogCaptureFixture, key: str) -> list[logging.LogRecord]:
    """The records about `key`, each checked to name it in its text and its fields."""
    found = [r for r in caplog.records if getattr(r, "stream_key", None) == key]
    for record in found:
        generation = record.generation  # type: ignore[attr-defined]
        assert record.getMessage().startswith(f"stream {key!r} (generation {generation}): ")
    return found


def failing_handler(message: InboxMessage) -> None:
    raise RuntimeError("the handler broke")


async def test_records_about_sources_and_steering_name_their_stream(
    make_hub: Callable[..., StreamHub], caplog: pytest.LogCaptureFixture
) -> None:
    """Joins refused, sources not joined or lost, inbox messages that cannot be taken, a
    steer event over the stream's byte limit: each names the stream, as a warning (an
    operator may act) or an error (a message no release of ours posts)."""
    caplog.set_level(logging.DEBUG, "fastapi_streamhub")
    async with make_hub(lease_ttl_s=2.0, max_bytes=400) as hub:
        producer, _ = await hub.register("chat:fan")
        producer.source("search")
        with pytest.raises(JoinRefusedError):
            await hub.join("chat:fan", source="search", accept_timeout_s=0.5).open()
        producer.expect("late", within_s=0.1)
        lost = await hub.join("chat:fan", source="w", lease_s=0.3).open()
        lost._halt()  # this process stalls: no more posts, no heartbeat
        producer.inbox.on("test", failing_handler)
        await post(hub.backend, "chat:fan", kind="test", payload="x", source="t")
        await post(hub.backend, "chat:fan", kind="steer", payload="{not json", source="t")
        await producer.publish("y" * 300)
        await hub.steer("chat:fan", "z" * 200)
        assert [m.data for m in [await anext(producer.messages())]] == ["z" * 200]

        async def sources_ended() -> bool:
            return {"late", "w"} <= set(producer.ended_sources)

        await eventually(sources_ended)
        await lost.aclose()
    seen = {
        (r.levelname, r.getMessage().split(": ", 1)[1])
        for r in stream_records(caplog, "chat:fan")
        if r.generation == producer.generation  # type: ignore[attr-defined]
    }
    assert {
        (
            "WARNING",
            "the join of source 'search' was refused: "
            "this generation already has a source named 'search'",
        ),
        ("WARNING", "no process joined as source 'late' in time"),
        ("WARNING", "source 'w' lost its lease"),
        ("ERROR", "an inbox handler failed on a 'test' message; it is not retried"),
    } <= seen
    (not_json,) = [text for level, text in seen if "is not JSON" in text]
    assert not_json.startswith("steering message ") and not_json.endswith(" skipped")
    (over,) = [(level, text) for level, text in seen if "steer event" in text]
    assert over[0] == "WARNING" and over[1].endswith("limit of 400 bytes.")


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_a_write_redis_refuses_names_its_stream(
    backend_kind: str,
    make_hub: Callable[..., StreamHub],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key of the wrong type under the stream's events: Redis refuses the write for good
    (`WRONGTYPE`), which ends that stream alone, as an error naming it."""
    caplog.set_level(logging.DEBUG, "fastapi_streamhub")
    async with make_hub() as hub:
        producer, _ = await hub.register("chat:wrongtype")
        await command(redis_server, "SET", KeySpace("streamhub:").events("chat:wrongtype"), "x")
        await producer.publish("a")
        assert await producer.wait() == "failed"
    (refused,) = [r for r in stream_records(caplog, "chat:wrongtype") if "Redis" in r.getMessage()]
    assert refused.levelno == logging.ERROR
    assert refused.generation == producer.generation  # type: ignore[attr-defined]
    assert "Redis refused the write: " in refused.getMessage()
    assert "WRONGTYPE" in refused.getMessage()
