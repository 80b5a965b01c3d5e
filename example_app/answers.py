"""The chat's answer as a stream of events: the same generator runs in the web process
(`@resumable_stream`) or in a job queue worker (`example_app/worker.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from example_app.llm import ChatModel, OpenAIModel, SimulatedModel, TokenMeter
from example_app.settings import Settings
from example_app.steering import steerable
from fastapi_streamhub import Event, current_producer


def build_model(settings: Settings) -> ChatModel:
    """The OpenAI-compatible model when `OPENAI_MODEL` is set, else the simulated one."""
    meter = TokenMeter()
    if settings.openai_model:
        return OpenAIModel(
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            meter=meter,
        )
    return SimulatedModel(tokens_per_s=settings.tokens_per_s, meter=meter)


async def answer(model: ChatModel, prompt: str) -> AsyncIterator[str | Event]:
    """Answer `prompt`; the hub stores every event this yields.

    The prompt goes first, as a named event, so a page that opens the chat later (after a
    reload, or on another server) can show the question as well as the answer. The token
    count goes into the stream's metadata, which the final `done` event carries. A reader
    may steer the answer while it streams (`example_app/steering.py`).
    """
    yield Event(event="prompt", data={"text": prompt})
    count = 0
    async for token in steerable(model, prompt):
        count += 1
        yield token
    await current_producer().set_metadata({"tokens": count})
