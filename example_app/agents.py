"""The demo's agent mode: a planner and two tool-callers writing one answer together.

The planner is the route's generator, the generation's first source (`main`). It starts
`search` in this process (`producer.spawn`) and asks for `calculator`, which joins the
generation with `hub.join`, as a process that did not start it does: from the tool worker
(`example_app/tool_worker.py`, a process of its own, with `STREAMHUB_DEMO_TOOL_WORKER=1` and
the streams in Redis), or else from a task of this process. All three write at the model's
pace; the page shows one transcript in the order the hub stored their events, each part
labelled with its source.

Every source's output is known in advance for a prompt (`planner_tokens`, `search_steps`,
`calculator_steps`), so a test can check that each source's text arrived whole, once, and
attributed to it; only the interleaving depends on timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

import anyio
import redis.asyncio as redis

from example_app.llm import simulated_answer
from fastapi_streamhub import (
    Event,
    JoinRefusedError,
    NotRunningError,
    SessionNotFoundError,
    StreamHub,
    current_producer,
)

logger = logging.getLogger("example_app")

TOOL_QUEUE: Final = "streamhub-demo:tool-calls"
"""The Redis list the planner pushes calculator calls onto; the tool worker pops them."""

CallTool = Callable[[str, str], Awaitable[None]]
"""Asks for the calculator to join the generation of a key, for a prompt."""


def _rng(prompt: str, salt: str) -> random.Random:
    return random.Random(hashlib.sha256(f"{salt}:{prompt}".encode()).digest())


def planner_tokens(prompt: str) -> list[str]:
    """The planner's text: a plan, then the simulated model's answer."""
    plan = "Plan: search the notes, have the calculator size it up, then answer.\n\n"
    return [f"{word} " for word in plan.split()] + simulated_answer(prompt)[:40]


def search_steps(prompt: str) -> list[str | Event]:
    """What the search tool-caller writes: its progress a line at a time, then its result
    as an event."""
    hits = _rng(prompt, "search").randint(3, 9)
    return [
        f"Searching the notes for “{prompt.strip()[:40]}”… ",
        f"found {hits} passages. ",
        "Reading the best three. ",
        Event("result", {"hits": hits}),
    ]


def calculator_steps(prompt: str) -> list[str | Event]:
    """What the calculator writes, from its own process."""
    tokens = len(simulated_answer(prompt))
    return [
        "Counting the answer… ",
        f"{tokens} tokens, ",
        f"about {tokens * 4} characters. ",
        Event("result", {"tokens": tokens}),
    ]


TOOL_STEP_TOKENS: Final = 6
"""A tool-caller writes one step in the time the planner writes this many tokens."""


async def paced(
    items: Sequence[str | Event], tokens_per_s: float, *, every: int = 1
) -> AsyncIterator[str | Event]:
    """Yield `items` at the model's pace, one per `every` tokens' time."""
    for item in items:
        await anyio.sleep(every / tokens_per_s)
        yield item


async def planner(
    prompt: str, *, tokens_per_s: float, call_tool: CallTool
) -> AsyncIterator[str | Event]:
    """The first source: starts the tool-callers, then writes its own text. The answer
    ends once every source has ended (the hub's default, `ends_with = "all"`); it waits
    for the calculator (`expect`), however late its process joins."""
    producer = current_producer()
    producer.spawn("search", paced(search_steps(prompt), tokens_per_s, every=TOOL_STEP_TOKENS))
    producer.expect("calculator")
    await call_tool(producer.key, prompt)
    async for token in paced(planner_tokens(prompt), tokens_per_s):
        yield token


async def run_calculator(hub: StreamHub, key: str, prompt: str, tokens_per_s: float) -> None:
    """Join the generation of `key` as `calculator` and write its steps; a cancel of the
    answer stops it."""
    try:
        async with hub.join(key, source="calculator") as joined:
            steps = paced(calculator_steps(prompt), tokens_per_s, every=TOOL_STEP_TOKENS)
            await joined.run(steps)
    except (SessionNotFoundError, NotRunningError, JoinRefusedError) as exc:
        logger.warning("the calculator could not join %r: %s", key, exc)


class ToolCalls:
    """Where the calculator runs: the tool worker's process, through a Redis list at
    `queue_url`, or (without one) a task of this process."""

    def __init__(self, hub: StreamHub, *, queue_url: str | None, tokens_per_s: float) -> None:
        self._hub = hub
        self._tokens_per_s = tokens_per_s
        self._redis = None if queue_url is None else redis.Redis.from_url(queue_url)
        self._tasks: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        """Run the in-process calls (without the tool worker) until cancelled."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            await anyio.sleep_forever()

    async def call(self, key: str, prompt: str) -> None:
        """Ask for the calculator; returns at once (it joins when it can)."""
        if self._redis is not None:
            await self._redis.lpush(TOOL_QUEUE, json.dumps({"key": key, "prompt": prompt}))
        elif self._tasks is not None:
            self._tasks.start_soon(run_calculator, self._hub, key, prompt, self._tokens_per_s)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
