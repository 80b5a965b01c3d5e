"""A local OpenAI-compatible server: Chat Completions and Responses streamed over SSE.

The `model` of a request picks a script, `<script>` or `<script>:<tag>`:

- `text`, `tools`, `reasoning`, `weather` (the documentation's example), `error` (and for
  Responses also `incomplete`, `failed`): short fixed streams, in the shapes OpenAI sends
  (see `CHAT` and `RESPONSES`);
- `slow`: a long answer (`"w0 "`, `"w1 "`, ...), one delta every 20 ms;
- any other model streams `text`.

`GET /stats/{tag}` counts the requests of a tag and how their streams ended: `open`,
`completed`, or `abandoned` (the client closed the connection before the end), which is
how a test sees that a cancel closed the request to the model.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

SLOW_CHUNKS = 2000
SLOW_INTERVAL_S = 0.02
CHAT_USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
RESPONSE_USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 12,
}

app = FastAPI()
stats: defaultdict[str, dict[str, int]] = defaultdict(
    lambda: {"requests": 0, "open": 0, "completed": 0, "abandoned": 0}
)


# -- Chat Completions ---------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def tool_delta(index: int, arguments: str, call: tuple[str, str] | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    delta: dict[str, Any] = {"index": index, "function": function}
    if call is not None:
        delta |= {"id": call[0], "type": "function"}
        function["name"] = call[1]
    return chunk({"tool_calls": [delta]})


CHAT: dict[str, list[dict[str, Any]]] = {
    "text": [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": text}) for text in ["Hel", "lo", " wor", "ld"]),
        chunk({}, "stop"),
    ],
    "tools": [
        chunk({"role": "assistant", "content": None}),
        tool_delta(0, "", ("call_a", "get_weather")),
        tool_delta(0, '{"ci'),
        tool_delta(0, 'ty": "Pa'),
        tool_delta(0, 'ris"}'),
        tool_delta(1, '{"tz": "CET"}', ("call_b", "get_time")),
        tool_delta(2, "", ("call_c", "broken")),
        tool_delta(2, "{not json"),
        chunk({}, "tool_calls"),
    ],
    "reasoning": [
        chunk({"role": "assistant", "content": "", "reasoning_content": "Think"}),
        chunk({"reasoning_content": "ing..."}),
        chunk({"content": "Done."}),
        chunk({}, "length"),
    ],
    "weather": [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me check."}),
        tool_delta(0, "", ("call_w", "get_weather")),
        tool_delta(0, '{"city":'),
        tool_delta(0, ' "Paris"}'),
        chunk({}, "tool_calls"),
    ],
    "error": [
        chunk({"role": "assistant", "content": "partial"}),
        {
            "error": {
                "message": "upstream detail sk-secret",
                "type": "server_error",
                "code": "server_error",
            }
        },
    ],
}


def chat_events(script: str, include_usage: bool) -> Iterator[str]:
    for body in CHAT[script]:
        if include_usage and "choices" in body:
            body = {**body, "usage": None}
        yield f"data: {json.dumps(body)}\n\n"
    if include_usage and script != "error":
        final = {**chunk({}), "choices": [], "usage": CHAT_USAGE}
        yield f"data: {json.dumps(final)}\n\n"
    if script != "error":
        yield "data: [DONE]\n\n"


def slow_chat() -> Iterator[str]:
    for i in range(SLOW_CHUNKS):
        yield f"data: {json.dumps(chunk({'content': f'w{i} '}))}\n\n"
    yield "data: [DONE]\n\n"


# -- Responses ------------------------------------------------------------------------------


def response(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 0,
        "model": "fake",
        "status": status,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "usage": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        **fields,
    }


def function_call(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name}
    return item | {"arguments": arguments, "status": "completed"}


def function_call_events(
    index: int, call: dict[str, Any], parts: list[str]
) -> list[dict[str, Any]]:
    added = {"type": "response.output_item.added", "output_index": index}
    events = [added | {"item": call | {"arguments": "", "status": "in_progress"}}]
    for part in parts:
        delta = {"type": "response.function_call_arguments.delta", "item_id": call["id"]}
        events.append(delta | {"output_index": index, "delta": part})
    done = {"type": "response.function_call_arguments.done", "item_id": call["id"]}
    events.append(done | {"output_index": index, "arguments": call["arguments"]})
    events.append({"type": "response.output_item.done", "output_index": index, "item": call})
    return events


def text_deltas(index: int, texts: list[str]) -> list[dict[str, Any]]:
    base = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": index}
    return [base | {"content_index": 0, "delta": text, "logprobs": []} for text in texts]


def summary(part: int, texts: list[str]) -> list[dict[str, Any]]:
    where = {"item_id": "rs_1", "output_index": 0, "summary_index": part}
    added = {"type": "response.reasoning_summary_part.added", **where}
    events = [added | {"part": {"type": "summary_text", "text": ""}}]
    events += [
        {"type": "response.reasoning_summary_text.delta", **where, "delta": text} for text in texts
    ]
    return events


WEATHER = function_call("fc_1", "call_a", "get_weather", '{"city": "Paris"}')
BROKEN = function_call("fc_2", "call_b", "broken", "{not json")
COMPLETED = {"type": "response.completed", "response": response("completed", usage=RESPONSE_USAGE)}
RESPONSES: dict[str, list[dict[str, Any]]] = {
    "text": [*text_deltas(0, ["Hel", "lo", " wor", "ld"]), COMPLETED],
    "tools": [
        *function_call_events(0, WEATHER, ['{"ci', 'ty": "Pa', 'ris"}']),
        *function_call_events(1, BROKEN, ["{not json"]),
        COMPLETED,
    ],
    "reasoning": [
        *summary(0, ["First", " thought."]),
        *summary(1, ["Second."]),
        *text_deltas(1, ["Answer."]),
        COMPLETED,
    ],
    "weather": [
        *summary(0, ["The user wants", " the weather."]),
        *function_call_events(
            1,
            function_call("fc_w", "call_w", "get_weather", '{"city": "Paris"}'),
            ['{"city":', ' "Paris"}'],
        ),
        COMPLETED,
    ],
    "incomplete": [
        *text_deltas(0, ["Trunc"]),
        {
            "type": "response.incomplete",
            "response": response(
                "incomplete",
                incomplete_details={"reason": "max_output_tokens"},
                usage=RESPONSE_USAGE,
            ),
        },
    ],
    "error": [
        *text_deltas(0, ["partial"]),
        {"type": "error", "code": "server_error", "message": "detail sk-secret", "param": None},
    ],
    "failed": [
        {
            "type": "response.failed",
            "response": response(
                "failed", error={"code": "rate_limit_exceeded", "message": "detail sk-secret"}
            ),
        },
    ],
}


def response_events(script: str) -> Iterator[str]:
    created = {"type": "response.created", "response": response("in_progress")}
    for number, event in enumerate([created, *RESPONSES[script]]):
        body = {**event, "sequence_number": number}
        yield f"event: {event['type']}\ndata: {json.dumps(body)}\n\n"


def slow_response() -> Iterator[str]:
    for i in range(SLOW_CHUNKS):
        [event] = text_deltas(0, [f"w{i} "])
        yield f"event: {event['type']}\ndata: {json.dumps(event | {'sequence_number': i})}\n\n"


# -- serving ------------------------------------------------------------------------------------


async def counted(tag: str, events: Iterator[str], interval_s: float) -> AsyncIterator[str]:
    record = stats[tag]
    record["open"] += 1
    completed = False
    try:
        for text in events:
            yield text
            await anyio.sleep(interval_s)
        completed = True
    finally:
        record["open"] -= 1
        record["completed" if completed else "abandoned"] += 1


def serve(model: str, events: Iterator[str], slow: Iterator[str]) -> StreamingResponse:
    script, _, tag = model.partition(":")
    stats[tag]["requests"] += 1
    interval_s = SLOW_INTERVAL_S if script == "slow" else 0.0
    chosen = slow if script == "slow" else events
    return StreamingResponse(counted(tag, chosen, interval_s), media_type="text/event-stream")


def script_of(model: str, scripts: dict[str, Any]) -> str:
    script = model.partition(":")[0]
    return script if script in scripts else "text"


@app.post("/v1/chat/completions")
async def completions(body: dict[str, Any]) -> StreamingResponse:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    script = script_of(body["model"], CHAT)
    return serve(body["model"], chat_events(script, include_usage), slow_chat())


@app.post("/v1/responses")
async def responses(body: dict[str, Any]) -> StreamingResponse:
    script = script_of(body["model"], RESPONSES)
    return serve(body["model"], response_events(script), slow_response())


@app.get("/stats/{tag}")
async def read_stats(tag: str) -> dict[str, int]:
    return stats[tag]


@app.get("/stats")
async def read_untagged_stats() -> dict[str, int]:
    return stats[""]
