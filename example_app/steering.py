"""Steering the demo's answer: a reader's message changes its course while it streams.

The generator checks for steering messages between tokens (`take_messages()`). When one
arrives, it closes the model's stream and asks the model to go on from what it has said,
following the reader's words: the simulated model switches to short sentences and says
so; an OpenAI-compatible model gets the answer so far and the instruction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing

import anyio

from example_app.llm import ChatModel, OpenAIModel, SimulatedModel
from fastapi_streamhub import SteeringMessage, current_producer

SHORT_SENTENCES = (
    "Every token is stored first.",
    "Readers resume from a cursor.",
    "Any server can serve them.",
    "Stop ends the model itself.",
    "That is the short version.",
)
"""What the simulated model says once steered: short sentences, as asked."""

_TOKEN = re.compile(r"\s*\S+")


def steered_opening(instructions: Sequence[str]) -> str:
    quoted = "; ".join(f"“{text}”" for text in instructions)
    return f"\n\n↪ Steered: {quoted}. Switching to short sentences.\n\n"


def simulated_steered_answer(instructions: Sequence[str]) -> list[str]:
    """The simulated model's tokens after a steer, each with its leading whitespace."""
    return _TOKEN.findall(steered_opening(instructions) + " ".join(SHORT_SENTENCES))


def instruction_of(message: SteeringMessage) -> str:
    """The reader's words: the page sends `{"text": ...}`; any other JSON is shown as is."""
    data = message.data
    if isinstance(data, dict) and isinstance(data.get("text"), str):
        return str(data["text"]).strip()[:500]
    return str(data)[:500]


async def steered_stream(
    model: ChatModel, prompt: str, said: str, instructions: Sequence[str]
) -> AsyncGenerator[str, None]:
    """The model's answer from here on, following `instructions`."""
    if isinstance(model, OpenAIModel):
        async with aclosing(model.continue_answer(prompt, said, instructions)) as tokens:
            async for token in tokens:
                yield token
        return
    interval = model.interval_s if isinstance(model, SimulatedModel) else 0.0
    with model.meter.generation():
        for token in simulated_steered_answer(instructions):
            await anyio.sleep(interval)
            model.meter.generated += 1
            yield token


async def steerable(model: ChatModel, prompt: str) -> AsyncIterator[str]:
    """The model's answer to `prompt`, changing course each time a reader steers it."""
    producer = current_producer()
    said: list[str] = []
    stream = model.stream(prompt)
    while True:
        instructions: list[str] = []
        async with aclosing(stream) as tokens:
            async for token in tokens:
                said.append(token)
                yield token
                instructions = [instruction_of(m) for m in producer.take_messages()]
                if instructions:
                    break
        if not instructions:
            return
        stream = steered_stream(model, prompt, "".join(said), instructions)
