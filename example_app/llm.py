"""The model behind the demo: a simulated LLM by default, or any OpenAI-compatible server.

The simulated model keeps the demo and its browser tests self-contained: its whole answer to a
prompt is known in advance (`simulated_answer`), so a test can check that a page showed every
token exactly once, and its pace is slow enough to reload, stop or go offline mid-answer.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

_OPENING = "You asked: “{prompt}”\n\nHere is what I would tell a colleague. "

_SENTENCES = (
    "A token stream is only as durable as the place it is written to, "
    "so every chunk lands in storage before any reader sees it.",
    "When the page reloads, it asks for the events after the last one it rendered — "
    "not for the whole answer again.",
    "A cursor names a generation and a sequence number, which is all a reader needs "
    "to resume on any server.",
    "Closing the tab does not stop the model: only Stop, completion, an error or a shutdown does.",
    "If the network drops for a moment, the reader waits, reconnects and carries on "
    "from its cursor, without gaps or repeats.",
    "Cancelling on one instance reaches the producer on another within milliseconds, "
    "because the signal travels through Redis.",
    "Two requests racing to start the same chat never both generate: one claims it, "
    "the other attaches.",
    "Unicode survives the trip untouched — naïve café, 東京, emoji 🚀 — because every "
    "event carries one JSON document.",
    "A late reader still sees the end of the story, since terminal events are stored "
    "like any other.",
    "Idle connections stay open thanks to keep-alive comments that no reader ever renders.",
)

_TOKEN = re.compile(r"\s*\S+")


def simulated_answer(prompt: str) -> list[str]:
    """The simulated model's whole answer to `prompt`, token by token.

    Deterministic, so tests can compare a page's text with it; the tokens carry their leading
    whitespace (as real LLM tokens do), so joining them gives the text exactly.
    """
    rng = random.Random(hashlib.sha256(prompt.encode()).digest())
    sentences = rng.sample(_SENTENCES, k=5)
    body = " ".join(sentences[:3]) + "\n\n" + " ".join(sentences[3:])
    text = _OPENING.format(prompt=prompt.strip()) + body
    return _TOKEN.findall(text)


@dataclass
class TokenMeter:
    """Counts what the model does in this process, so a test can see a cancelled run stop."""

    generated: int = 0
    running: int = 0

    @contextmanager
    def generation(self) -> Iterator[None]:
        """Mark one generation as running until its generator is finished or closed."""
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


class ChatModel(Protocol):
    """What the chat endpoint needs from a model."""

    meter: TokenMeter

    def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        """Yield the answer to `prompt` as text chunks."""
        ...

    async def aclose(self) -> None:
        """Release connections held by the model."""
        ...


class SimulatedModel:
    """Streams `simulated_answer` at a fixed pace, like a model with no network behind it."""

    def __init__(self, *, tokens_per_s: float, meter: TokenMeter | None = None) -> None:
        if tokens_per_s <= 0:
            raise ValueError(f"tokens_per_s must be positive, got {tokens_per_s}")
        self.meter = meter or TokenMeter()
        self._interval_s = 1.0 / tokens_per_s

    @property
    def interval_s(self) -> float:
        """The pace: seconds between two tokens."""
        return self._interval_s

    async def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        """Yield the tokens one pace period apart."""
        with self.meter.generation():
            for token in simulated_answer(prompt):
                await anyio.sleep(self._interval_s)
                self.meter.generated += 1
                yield token

    async def aclose(self) -> None:
        """Nothing to release."""


class OpenAIModel:
    """Streams chat completions from any OpenAI-compatible server (OpenAI, vLLM, Ollama...)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        meter: TokenMeter | None = None,
    ) -> None:
        try:
            from openai import AsyncOpenAI
        except ImportError as exc:  # the `openai` extra is optional
            raise RuntimeError(
                "OPENAI_MODEL is set but the openai package is missing: "
                "pip install 'fastapi-streamhub[openai]'"
            ) from exc
        self.meter = meter or TokenMeter()
        self._model = model
        self._client: AsyncOpenAI = AsyncOpenAI(base_url=base_url, api_key=api_key)

    def stream(self, prompt: str) -> AsyncGenerator[str, None]:
        """Yield the content deltas of the answer to `prompt`."""
        return self._complete([{"role": "user", "content": prompt}])

    def continue_answer(
        self, prompt: str, said: str, instructions: Sequence[str]
    ) -> AsyncGenerator[str, None]:
        """Go on from the answer so far (`said`), following the reader's steering."""
        follow = "; ".join(instructions)
        return self._complete(
            [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": said},
                {
                    "role": "user",
                    "content": "Continue your answer from where it stopped, without "
                    f"repeating it, and follow this from now on: {follow}",
                },
            ]
        )

    async def _complete(
        self, messages: list[ChatCompletionMessageParam]
    ) -> AsyncGenerator[str, None]:
        """Yield the content deltas; closing or cancelling this generator closes the upstream
        request, so a stopped chat stops costing tokens."""
        with self.meter.generation():
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                stream=True,
            )
            try:
                async for chunk in stream:
                    if chunk.choices and (text := chunk.choices[0].delta.content):
                        self.meter.generated += 1
                        yield text
            finally:
                # Shielded: a cancelled scope would otherwise abort the close itself and leave
                # the upstream request running.
                with anyio.move_on_after(5, shield=True):
                    await stream.close()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()
