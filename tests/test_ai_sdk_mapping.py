"""How the library's events become the AI SDK's parts, and what `@ai_sdk_stream` accepts.

Pure functions and declarations: no hub, no HTTP. The answers on the wire are checked in
`tests/test_ai_sdk.py`, and against the SDK itself in `tests/test_ai_sdk_node.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Body

from fastapi_streamhub import Event, StreamEvent
from fastapi_streamhub._events import encode_chunk
from fastapi_streamhub.ai_sdk import ChatRequest, UIMessage, ai_sdk_stream, current_message_id
from fastapi_streamhub.ai_sdk._parts import PartWriter, encode_parts

GEN = "Zx3kq1f9R5m0uV4a8yWc-A"


def events(*items: object, generation: str = GEN) -> list[StreamEvent]:
    """What a generator yielding `items` stores, seq from 1 (a `done` is written as
    `("done", metadata)`)."""
    stored = []
    for seq, item in enumerate(items, start=1):
        if isinstance(item, tuple):
            name, data = item[0], json.dumps(item[1])
        else:
            name, data = encode_chunk(item)
        stored.append(StreamEvent(generation, seq, name, data))
    return stored


def translate(stored: list[StreamEvent]) -> list[dict[str, Any]]:
    writer = PartWriter("chat:1")
    return [part for event in stored for part in writer.parts(event)]


def types(parts: list[dict[str, Any]]) -> list[str]:
    return [part["type"] for part in parts]


def test_blocks_close_before_any_other_part_so_the_order_is_kept() -> None:
    parts = translate(
        events(
            Event("message_start", {"message_id": "m1"}),
            "Hel",
            "lo",
            Event("reasoning", "hmm"),
            Event("message_metadata", {"model": "x"}),
            Event("reasoning", "!"),
            "Done",
            Event("data-card", [1, 2]),
            "after",
            ("done", {}),
        )
    )
    assert parts == [
        {"type": "start", "messageId": "m1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "reasoning-start", "id": "reasoning-2"},
        {"type": "reasoning-delta", "id": "reasoning-2", "delta": "hmm"},
        {"type": "message-metadata", "messageMetadata": {"model": "x"}},
        {"type": "reasoning-delta", "id": "reasoning-2", "delta": "!"},
        {"type": "reasoning-end", "id": "reasoning-2"},
        {"type": "text-start", "id": "text-3"},
        {"type": "text-delta", "id": "text-3", "delta": "Done"},
        {"type": "text-end", "id": "text-3"},
        {"type": "data-card", "data": [1, 2]},
        {"type": "text-start", "id": "text-4"},
        {"type": "text-delta", "id": "text-4", "delta": "after"},
        {"type": "text-end", "id": "text-4"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
    ]


def test_tool_calls_results_and_steps() -> None:
    parts = translate(
        events(
            Event("tool_call_start", {"id": "c1", "name": "get_weather"}),
            Event("tool_call_delta", {"id": "c1", "delta": "{}"}),
            Event("tool_call", {"id": "c1", "name": "get_weather", "arguments": {}}),
            Event("tool_result", {"id": "c1", "output": None}),
            Event("tool_error", {"id": "c2", "error": "boom"}),
            Event("step"),
        )
    )
    assert parts[2:] == [
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "get_weather"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "{}"},
        {
            "type": "tool-input-available",
            "toolCallId": "c1",
            "toolName": "get_weather",
            "input": {},
        },
        {"type": "tool-output-available", "toolCallId": "c1", "output": None},
        {"type": "tool-output-error", "toolCallId": "c2", "errorText": "boom"},
        {"type": "finish-step"},
        {"type": "start-step"},
    ]


def test_without_message_start_the_generation_is_the_message_id() -> None:
    parts = translate(events("Hi"))
    assert parts[0] == {"type": "start", "messageId": GEN}


def test_other_events_and_chunks_that_are_not_text_become_no_part() -> None:
    parts = translate(events("a", Event("prompt", {"text": "?"}), {"x": 1}, 42, "b"))
    assert types(parts) == ["start", "start-step", "text-start", "text-delta", "text-delta"]


def test_a_malformed_event_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_streamhub"):
        parts = translate(
            events(Event("tool_call_start", {"id": 7, "name": "x"}), Event("reasoning", 3), "ok")
        )
    assert types(parts) == ["start", "start-step", "text-start", "text-delta"]
    about = f"stream 'chat:1' (generation {GEN}): "
    assert [r.getMessage() for r in caplog.records] == [
        f"{about}event {GEN}:1 (tool_call_start) is not sent to the AI SDK: needs a string 'id'",
        f"{about}event {GEN}:2 (reasoning) is not sent to the AI SDK: needs text",
    ]
    assert {(r.stream_key, r.generation) for r in caplog.records} == {("chat:1", GEN)}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool-calls"),
        ("function_call", "tool-calls"),
        ("content_filter", "content-filter"),
        ("tool-calls", "tool-calls"),
        ("content-filter", "content-filter"),
        ("error", "error"),
        ("something new", "other"),
        (None, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, expected: str) -> None:
    metadata = {"usage": {"total_tokens": 3}, "finish_reason": reason}
    [*_, finish] = translate(events(("done", metadata)))
    assert finish == {
        "type": "finish",
        "finishReason": expected,
        "messageMetadata": {"usage": {"total_tokens": 3}},
    }


def test_terminal_events() -> None:
    error = {"message": "Sorry.", "reason": "failed"}
    assert translate(events("a", ("error", error)))[-1] == {"type": "error", "errorText": "Sorry."}
    assert translate(events("a", ("cancelled", {"reason": "cancelled"})))[-1] == {"type": "abort"}


def test_an_error_before_any_event_has_no_start() -> None:
    data = json.dumps({"message": "The stream's storage is unavailable.", "reason": "x"})
    unstored = StreamEvent(GEN, 0, "error", data)
    assert PartWriter("chat:1").parts(unstored) == [
        {"type": "error", "errorText": "The stream's storage is unavailable."}
    ]


def test_a_reset_starts_the_next_generation_afresh() -> None:
    writer = PartWriter("chat:1")
    old = [p for e in events("a") for p in writer.parts(e)]
    reset = StreamEvent("new", 0, "reset", json.dumps({"generation": "new"}))
    assert writer.parts(reset) == []
    new = [p for e in events("b", generation="new") for p in writer.parts(e)]
    assert types(old) == types(new)
    assert new[0] == {"type": "start", "messageId": "new"}
    assert new[2] == {"type": "text-start", "id": "text-1"}


def test_the_last_part_of_an_event_carries_its_id() -> None:
    [first] = events("a")
    text = encode_parts(first, [{"type": "text-start", "id": "t"}, {"type": "text-delta"}])
    assert text == (
        f'data: {{"type":"text-start","id":"t"}}\n\nid: {GEN}:1\ndata: {{"type":"text-delta"}}\n\n'
    )
    assert encode_parts(first, []) == ""


# -- the request body ---------------------------------------------------------------------------


def test_the_body_usechat_posts() -> None:
    request = ChatRequest.model_validate(
        {
            "id": "c1",
            "messages": [
                {
                    "id": "u1",
                    "role": "user",
                    "parts": [{"type": "text", "text": "Hi "}, {"type": "file"}],
                },
                {"id": "a1", "role": "assistant", "parts": [], "metadata": {"x": 1}},
            ],
            "trigger": "regenerate-message",
            "messageId": "a1",
            "temperature": 0.2,
        }
    )
    assert request.message_id == "a1"
    assert request.trigger == "regenerate-message"
    assert request.messages[0].text == "Hi "
    assert request.model_extra == {"temperature": 0.2}
    assert request.continued_message == "a1"
    assert ChatRequest(id="c", messages=[UIMessage(id="u", role="user")]).continued_message is None


# -- the decorator ------------------------------------------------------------------------------


def test_the_key_must_name_the_chat_id() -> None:
    with pytest.raises(ValueError, match=r"must name the chat id: '\{id\}'"):
        ai_sdk_stream("chat:{chat_id}")


def test_the_endpoint_needs_one_chat_request() -> None:
    async def none(text: str) -> AsyncIterator[str]:
        yield text

    async def two(a: ChatRequest, b: ChatRequest) -> AsyncIterator[str]:
        yield a.id

    with pytest.raises(TypeError, match="found none"):
        ai_sdk_stream("chat:{id}")(none)
    with pytest.raises(TypeError, match=r"found \['a', 'b'\]"):
        ai_sdk_stream("chat:{id}")(two)


def test_the_chat_id_is_not_a_parameter() -> None:
    async def endpoint(id: str, chat: ChatRequest) -> AsyncIterator[str]:
        yield id

    with pytest.raises(TypeError, match="rename the parameter `id`"):
        ai_sdk_stream("chat:{id}")(endpoint)


class Mine(ChatRequest):
    temperature: float = 1.0


def test_an_annotated_subclass_is_the_body_and_generators_only() -> None:
    async def endpoint(chat: Annotated[Mine, Body()]) -> AsyncIterator[str]:
        yield chat.id

    async def plain(chat: ChatRequest) -> str:
        return chat.id

    assert ai_sdk_stream("chat:{id}")(endpoint).__name__ == "endpoint"
    with pytest.raises(TypeError, match="@ai_sdk_stream needs an async generator function"):
        ai_sdk_stream("chat:{id}")(plain)


def test_the_message_id_is_known_only_inside_the_generator() -> None:
    with pytest.raises(LookupError, match="only available inside an @ai_sdk_stream generator"):
        current_message_id()


def test_a_steering_message_becomes_a_data_part_where_it_was_taken() -> None:
    steer = {"id": "1-0", "source": "client", "message": {"text": "shorter"}}
    parts = translate(events("a", ("steer", steer), "b"))
    assert parts[2:] == [
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "a"},
        {"type": "text-end", "id": "text-1"},
        {"type": "data-steer", "data": steer},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "b"},
    ]
