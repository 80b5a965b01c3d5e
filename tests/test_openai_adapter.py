"""`fastapi_streamhub.openai`: the official `openai` client, a local OpenAI-compatible server
(`tests/apps/fake_openai_v2.py`, a real uvicorn process), and the hub on both backends.

Each test checks the exact events the hub stores, and the cancel tests that the request to
the model was abandoned (closed by the client) rather than left running.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from openai import AsyncOpenAI

from fastapi_streamhub import Producer, StreamEvent, StreamHub
from fastapi_streamhub._runner import drive
from fastapi_streamhub.client import StreamClient
from fastapi_streamhub.openai import chat_completion_events, response_events
from tests.apps.fake_openai_v2 import CHAT_USAGE, RESPONSE_USAGE
from tests.support.polling import eventually
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.anyio

_tags = itertools.count()


@pytest.fixture(scope="module")
def upstream() -> Iterator[UvicornServer]:
    """One fake OpenAI server for the module; tests tell their requests apart by tag."""
    with UvicornServer("tests.apps.fake_openai_v2:app") as server:
        yield server


@pytest.fixture
async def llm(upstream: UvicornServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=f"{upstream.base_url}/v1", api_key="sk-test", max_retries=0
    ) as client:
        yield client


def tagged(script: str) -> tuple[str, str]:
    tag = f"t{next(_tags)}"
    return f"{script}:{tag}", tag


async def upstream_stats(upstream: UvicornServer, tag: str) -> dict[str, int]:
    async with upstream.client() as http:
        record: dict[str, int] = (await http.get(f"/stats/{tag}")).json()
        return record


async def chat(
    llm: AsyncOpenAI, model: str, producer: Producer | None = None, **options: Any
) -> AsyncGenerator[object, None]:
    """A `@resumable_stream` generator body, as the docs write it."""
    stream = await llm.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], stream=True, **options
    )
    async with chat_completion_events(stream, producer=producer) as events:
        async for item in events:
            yield item


async def respond(llm: AsyncOpenAI, model: str) -> AsyncGenerator[object, None]:
    stream = await llm.responses.create(model=model, input="Hi", stream=True)
    async with response_events(stream) as events:
        async for item in events:
            yield item


async def produce(
    hub: StreamHub, generator: Callable[[], AsyncGenerator[object, None]]
) -> list[StreamEvent]:
    """Run `generator` as a producer of the hub and read its stream to the end."""
    key = f"chat:{next(_tags)}"
    producer, created = await hub.register(key)
    assert created
    hub.spawn(producer, lambda: drive(producer, generator()))
    events: list[StreamEvent] = []
    with anyio.fail_after(10):
        async with hub.subscribe(key) as subscription:
            events.extend([event async for event in subscription])
    return events


def shown(events: list[StreamEvent]) -> list[tuple[str | None, Any]]:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    return [(e.event, e.value) for e in events]


def call(id: str, name: str, arguments: object) -> tuple[str, Any]:
    return ("tool_call", {"id": id, "name": name, "arguments": arguments})


# -- Chat Completions ---------------------------------------------------------------------


async def test_chat_text_then_usage_and_finish_reason_on_done(
    hub: StreamHub, llm: AsyncOpenAI
) -> None:
    options = {"stream_options": {"include_usage": True}}
    events = await produce(hub, lambda: chat(llm, "text", **options))
    assert shown(events) == [
        (None, "Hel"),
        (None, "lo"),
        (None, " wor"),
        (None, "ld"),
        ("done", {"usage": CHAT_USAGE, "finish_reason": "stop"}),
    ]


async def test_chat_without_usage_carries_the_finish_reason(
    hub: StreamHub, llm: AsyncOpenAI
) -> None:
    events = await produce(hub, lambda: chat(llm, "text"))
    assert events[-1].value == {"finish_reason": "stop"}


async def test_chat_tool_calls_start_stream_their_arguments_then_complete(
    hub: StreamHub, llm: AsyncOpenAI
) -> None:
    events = await produce(hub, lambda: chat(llm, "tools", stream_options={"include_usage": True}))
    assert shown(events) == [
        ("tool_call_start", {"id": "call_a", "name": "get_weather"}),
        ("tool_call_delta", {"id": "call_a", "delta": '{"ci'}),
        ("tool_call_delta", {"id": "call_a", "delta": 'ty": "Pa'}),
        ("tool_call_delta", {"id": "call_a", "delta": 'ris"}'}),
        ("tool_call_start", {"id": "call_b", "name": "get_time"}),
        ("tool_call_delta", {"id": "call_b", "delta": '{"tz": "CET"}'}),
        ("tool_call_start", {"id": "call_c", "name": "broken"}),
        ("tool_call_delta", {"id": "call_c", "delta": "{not json"}),
        call("call_a", "get_weather", {"city": "Paris"}),
        call("call_b", "get_time", {"tz": "CET"}),
        call("call_c", "broken", "{not json"),
        ("done", {"usage": CHAT_USAGE, "finish_reason": "tool_calls"}),
    ]


async def test_chat_reasoning_of_compatible_servers(hub: StreamHub, llm: AsyncOpenAI) -> None:
    events = await produce(hub, lambda: chat(llm, "reasoning"))
    assert shown(events) == [
        ("reasoning", "Think"),
        ("reasoning", "ing..."),
        (None, "Done."),
        ("done", {"finish_reason": "length"}),
    ]


async def test_chat_upstream_error_ends_with_a_message_safe_to_show(
    hub: StreamHub, llm: AsyncOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    events = await produce(hub, lambda: chat(llm, "error"))
    assert shown(events) == [
        (None, "partial"),
        ("error", {"message": "The model's stream failed (server_error).", "reason": "failed"}),
    ]
    (logged,) = [r for r in caplog.records if "upstream detail sk-secret" in r.getMessage()]
    assert logged.getMessage().startswith(  # the detail goes to the log only, naming the stream
        f"stream {logged.stream_key!r} (generation {logged.generation}): "  # type: ignore[attr-defined]
        "the model's stream failed (server_error): "
    )
    assert logged.levelno == logging.WARNING


# -- Responses ------------------------------------------------------------------------------


async def test_responses_text_usage_and_finish_reason(hub: StreamHub, llm: AsyncOpenAI) -> None:
    events = await produce(hub, lambda: respond(llm, "text"))
    assert shown(events) == [
        (None, "Hel"),
        (None, "lo"),
        (None, " wor"),
        (None, "ld"),
        ("done", {"usage": RESPONSE_USAGE, "finish_reason": "stop"}),
    ]


async def test_responses_function_calls(hub: StreamHub, llm: AsyncOpenAI) -> None:
    events = await produce(hub, lambda: respond(llm, "tools"))
    assert shown(events) == [
        ("tool_call_start", {"id": "call_a", "name": "get_weather"}),
        ("tool_call_delta", {"id": "call_a", "delta": '{"ci'}),
        ("tool_call_delta", {"id": "call_a", "delta": 'ty": "Pa'}),
        ("tool_call_delta", {"id": "call_a", "delta": 'ris"}'}),
        call("call_a", "get_weather", {"city": "Paris"}),
        ("tool_call_start", {"id": "call_b", "name": "broken"}),
        ("tool_call_delta", {"id": "call_b", "delta": "{not json"}),
        call("call_b", "broken", "{not json"),
        ("done", {"usage": RESPONSE_USAGE, "finish_reason": "tool_calls"}),
    ]


async def test_responses_reasoning_summary(hub: StreamHub, llm: AsyncOpenAI) -> None:
    events = await produce(hub, lambda: respond(llm, "reasoning"))
    assert shown(events) == [
        ("reasoning", "First"),
        ("reasoning", " thought."),
        ("reasoning", "\n\n"),
        ("reasoning", "Second."),
        (None, "Answer."),
        ("done", {"usage": RESPONSE_USAGE, "finish_reason": "stop"}),
    ]


async def test_responses_incomplete_finishes_with_length(hub: StreamHub, llm: AsyncOpenAI) -> None:
    events = await produce(hub, lambda: respond(llm, "incomplete"))
    assert shown(events) == [
        (None, "Trunc"),
        ("done", {"usage": RESPONSE_USAGE, "finish_reason": "length"}),
    ]


@pytest.mark.parametrize(
    ("script", "code"), [("error", "server_error"), ("failed", "rate_limit_exceeded")]
)
async def test_responses_errors_end_with_a_message_safe_to_show(
    hub: StreamHub, llm: AsyncOpenAI, script: str, code: str
) -> None:
    events = await produce(hub, lambda: respond(llm, script))
    last = events[-1]
    assert (last.event, last.value) == (
        "error",
        {"message": f"The model's stream failed ({code}).", "reason": "failed"},
    )
    assert "sk-secret" not in "".join(e.data for e in events)


# -- closing the upstream ---------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_a_cancel_closes_the_request_to_the_model(
    hub: StreamHub, llm: AsyncOpenAI, upstream: UvicornServer, api: str
) -> None:
    model, tag = tagged("slow")
    key = f"chat:{tag}"
    producer, _ = await hub.register(key)
    generator = chat(llm, model) if api == "chat" else respond(llm, model)
    hub.spawn(producer, lambda: drive(producer, generator))
    events: list[StreamEvent] = []
    with anyio.fail_after(10):
        async with hub.subscribe(key) as subscription:
            async for event in subscription:
                events.append(event)
                if event.seq == 3:
                    result = await hub.cancel(key, wait=2.0)
                    assert result is not None and result.cancelled and result.stopped

    async def abandoned() -> bool:
        return (await upstream_stats(upstream, tag))["abandoned"] == 1

    await eventually(abandoned)
    assert await upstream_stats(upstream, tag) == {
        "requests": 1,
        "open": 0,
        "completed": 0,
        "abandoned": 1,
    }
    assert events[-1].event == "cancelled"
    assert [e.value for e in events[:-1]] == [f"w{i} " for i in range(len(events) - 1)]


async def test_leaving_early_closes_the_request_to_the_model(
    hub: StreamHub, llm: AsyncOpenAI, upstream: UvicornServer
) -> None:
    model, tag = tagged("slow")
    producer, _ = await hub.register(f"chat:{tag}")
    stream = await llm.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with anyio.fail_after(10):
        async with chat_completion_events(stream, producer=producer) as events:
            assert [await anext(events), await anext(events)] == ["w0 ", "w1 "]
            assert (await upstream_stats(upstream, tag))["open"] == 1

    async def abandoned() -> bool:
        return (await upstream_stats(upstream, tag))["abandoned"] == 1

    await eventually(abandoned)
    await producer.close()


async def test_a_generator_closed_at_its_yield_closes_the_request_to_the_model(
    hub: StreamHub, llm: AsyncOpenAI, upstream: UvicornServer
) -> None:
    """What the runner does when a cancel lands while the hub stores a yielded item."""
    model, tag = tagged("slow")
    producer, _ = await hub.register(f"chat:{tag}")
    generator = chat(llm, model, producer)
    with anyio.fail_after(10):
        assert [await anext(generator), await anext(generator)] == ["w0 ", "w1 "]
        await generator.aclose()

    async def abandoned() -> bool:
        return (await upstream_stats(upstream, tag))["abandoned"] == 1

    await eventually(abandoned)
    await producer.close()


async def test_a_finished_stream_is_not_counted_as_abandoned(
    hub: StreamHub, llm: AsyncOpenAI, upstream: UvicornServer
) -> None:
    model, tag = tagged("text")
    await produce(hub, lambda: chat(llm, model))
    assert await upstream_stats(upstream, tag) == {
        "requests": 1,
        "open": 0,
        "completed": 1,
        "abandoned": 0,
    }


async def test_outside_a_producer_the_adapter_asks_for_one(llm: AsyncOpenAI) -> None:
    stream = await llm.chat.completions.create(
        model="text", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    async with stream:
        with pytest.raises(LookupError, match="resumable_stream"):
            chat_completion_events(stream)


# -- the documented app, served by uvicorn, stopped through its cancel route ------------------


async def test_the_cancel_route_of_the_documented_app_closes_the_request_to_the_model(
    upstream: UvicornServer, make_uvicorn_server: Callable[..., UvicornServer]
) -> None:
    model, tag = tagged("slow")
    env = {
        "OPENAI_BASE_URL": f"{upstream.base_url}/v1",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_MODEL": model,
    }
    app = make_uvicorn_server("openai_chat:app", env=env, extra_args=["--app-dir", "docs/examples"])
    async with StreamClient(app.base_url) as client:
        events: list[StreamEvent] = []
        with anyio.fail_after(10):
            async with client.start("/chat/1", json={"text": "Hi"}) as stream:
                async for event in stream:
                    events.append(event)
                    if event.seq == 3:
                        assert (await client.cancel("/chat/1")).cancelled

    async def abandoned() -> bool:
        return (await upstream_stats(upstream, tag))["abandoned"] == 1

    await eventually(abandoned)
    assert events[-1].event == "cancelled"
    assert [e.value for e in events[:-1]] == [f"w{i} " for i in range(len(events) - 1)]


def test_the_extras_are_imported_only_when_used() -> None:
    """The core never imports `openai` or httpx-sse; the adapters import `openai` lazily."""
    code = (
        "import sys, fastapi_streamhub, fastapi_streamhub.openai; "
        "print(sorted(m for m in ('openai', 'httpx_sse') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
