"""The Responses API: `client.responses.create(..., stream=True)` into the hub's items.

The Responses API has no finish reason; one is derived in the Chat Completions words,
as the Vercel AI SDK's OpenAI provider does: `stop`, `tool_calls` when the model called
a function, `length` or `content_filter` for an incomplete response.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._events import Event
from .._producer import Producer
from ._adapter import Item, ModelEvents, Outcome, UpstreamStream, tool_arguments, upstream_error

if TYPE_CHECKING:
    from openai.types.responses import Response, ResponseStreamEvent

_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def response_events(
    stream: UpstreamStream[ResponseStreamEvent], *, producer: Producer | None = None
) -> ModelEvents[ResponseStreamEvent]:
    """Turn a streamed response into what a `@resumable_stream` generator yields.

    Output text deltas become text; reasoning summary (and reasoning text) deltas
    `Event("reasoning", text)`, with a blank line between two summary parts; function
    calls `tool_call_start`, `tool_call_delta` and `tool_call` events, with the call's
    `call_id` as their `id`. The usage and a finish reason go into the metadata that
    `done` carries. An `error` event or a failed response raises `StreamError`.

    Args:
        stream: what `AsyncOpenAI().responses.create(..., stream=True)` returned.
        producer: the producer whose metadata to set; by default the one the calling
            `@resumable_stream` generator feeds (`current_producer()`).

    Raises:
        LookupError: called outside a `@resumable_stream` generator without `producer`.
    """
    return ModelEvents(stream, _translate, producer)


@dataclass
class _State:
    calls: dict[str, str] = field(default_factory=dict)
    """The `call_id` of each function call item, by item id."""
    called: bool = False


async def _translate(
    events: AsyncIterator[ResponseStreamEvent], outcome: Outcome
) -> AsyncGenerator[Item, None]:
    state = _State()
    async for event in events:
        for item in _items(event, state):
            yield item
        if event.type in ("response.completed", "response.incomplete"):
            _finish(event.response, state, outcome)


def _items(event: ResponseStreamEvent, state: _State) -> Iterator[Item]:
    if event.type == "response.output_text.delta" or event.type == "response.refusal.delta":
        yield event.delta
    elif event.type in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
        yield Event("reasoning", event.delta)
    elif event.type == "response.reasoning_summary_part.added" and event.summary_index > 0:
        yield Event("reasoning", "\n\n")
    elif event.type == "response.output_item.added" and event.item.type == "function_call":
        item = event.item
        state.calls[item.id or item.call_id] = item.call_id
        yield Event("tool_call_start", {"id": item.call_id, "name": item.name})
    elif event.type == "response.function_call_arguments.delta" and event.delta:
        call_id = state.calls.get(event.item_id, event.item_id)
        yield Event("tool_call_delta", {"id": call_id, "delta": event.delta})
    elif event.type == "response.output_item.done" and event.item.type == "function_call":
        item = event.item
        state.called = True
        arguments = tool_arguments(item.arguments)
        yield Event("tool_call", {"id": item.call_id, "name": item.name, "arguments": arguments})
    elif event.type == "error":
        raise upstream_error(event.message, event.code)
    elif event.type == "response.failed":
        error = event.response.error
        raise upstream_error(error.message if error else None, error.code if error else None)


def _finish(response: Response, state: _State, outcome: Outcome) -> None:
    if response.usage is not None:
        outcome.usage = response.usage.model_dump(mode="json", exclude_none=True)
    details = response.incomplete_details
    if details is not None and response.status == "incomplete":
        reason = details.reason or "incomplete"
        outcome.finish_reason = _INCOMPLETE.get(reason, reason)
    else:
        outcome.finish_reason = "tool_calls" if state.called else "stop"
