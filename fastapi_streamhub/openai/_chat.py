"""Chat Completions: `client.chat.completions.create(..., stream=True)` into the hub's items.

Only the first choice is read (`n=1`, the default). A tool call is complete once the
choice has a finish reason (or the stream ends): Chat Completions has no per-call end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._events import Event
from .._producer import Producer
from ._adapter import Item, ModelEvents, Outcome, UpstreamStream, tool_arguments

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceDeltaToolCall

_REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where OpenAI-compatible servers (vLLM, DeepSeek, Ollama, OpenRouter) stream reasoning."""


def chat_completion_events(
    stream: UpstreamStream[ChatCompletionChunk], *, producer: Producer | None = None
) -> ModelEvents[ChatCompletionChunk]:
    """Turn a streamed chat completion into what a `@resumable_stream` generator yields.

    Content deltas become text; reasoning deltas (the `reasoning_content` or
    `reasoning` field of compatible servers) `Event("reasoning", text)`; tool calls
    `tool_call_start`, `tool_call_delta` and `tool_call` events. Usage (with
    `stream_options={"include_usage": True}`) and the finish reason go into the
    metadata that `done` carries. An upstream error raises `StreamError`.

    Args:
        stream: what `AsyncOpenAI().chat.completions.create(..., stream=True)` returned.
        producer: the producer whose metadata to set; by default the one the calling
            `@resumable_stream` generator feeds (`current_producer()`).

    Raises:
        LookupError: called outside a `@resumable_stream` generator without `producer`.
    """
    return ModelEvents(stream, _translate, producer)


@dataclass
class _ToolCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class _ToolCalls:
    """The calls of the choice, by index, until they are complete."""

    open: dict[int, _ToolCall] = field(default_factory=dict)

    def update(self, delta: ChoiceDeltaToolCall) -> Iterator[Event]:
        call = self.open.get(delta.index)
        function = delta.function
        if call is None:
            name = (function.name if function else None) or ""
            call = self.open[delta.index] = _ToolCall(delta.id or f"call_{delta.index}", name)
            yield Event("tool_call_start", {"id": call.id, "name": call.name})
        if function is not None and function.arguments:
            call.arguments.append(function.arguments)
            yield Event("tool_call_delta", {"id": call.id, "delta": function.arguments})

    def complete(self) -> Iterator[Event]:
        for index in sorted(self.open):
            call = self.open.pop(index)
            arguments = tool_arguments("".join(call.arguments))
            yield Event("tool_call", {"id": call.id, "name": call.name, "arguments": arguments})


async def _translate(
    chunks: AsyncIterator[ChatCompletionChunk], outcome: Outcome
) -> AsyncGenerator[Item, None]:
    calls = _ToolCalls()
    async for chunk in chunks:
        if chunk.usage is not None:
            outcome.usage = chunk.usage.model_dump(mode="json", exclude_none=True)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            for item in _delta_items(choice.delta, calls):
                yield item
            if choice.finish_reason is not None:
                outcome.finish_reason = choice.finish_reason
                for event in calls.complete():
                    yield event
    for event in calls.complete():
        yield event


def _delta_items(delta: ChoiceDelta, calls: _ToolCalls) -> Iterator[Item]:
    extra = delta.model_extra or {}
    for name in _REASONING_FIELDS:
        reasoning = extra.get(name)
        if isinstance(reasoning, str) and reasoning:
            yield Event("reasoning", reasoning)
            break
    for text in (delta.content, delta.refusal):
        if text:
            yield text
    for tool_call in delta.tool_calls or ():
        yield from calls.update(tool_call)
