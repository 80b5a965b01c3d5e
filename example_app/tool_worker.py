"""The demo's tool worker: a separate process that joins the agents' answers as `calculator`.

    STREAMHUB_REDIS_URL=redis://... python -m example_app.tool_worker

The web instances hand it their calls when they run with `STREAMHUB_DEMO_TOOL_WORKER=1`
(and the same `STREAMHUB_REDIS_URL`); one tool worker serves them all. It pops calls
from a Redis list (`example_app.agents.TOOL_QUEUE`), and for each one joins the
answer's generation with `hub.join` and writes the calculator's steps into it, however
many web instances serve the answer. If it dies mid-answer, the answer's owner ends the
calculator alone with `producer_lost` once its lease lapses, and the others finish.
"""

from __future__ import annotations

import json
import logging

import anyio
import redis.asyncio as redis

from example_app.agents import TOOL_QUEUE, run_calculator
from example_app.settings import Settings
from fastapi_streamhub import StreamHub

logger = logging.getLogger("example_app")

_POP_S = 1
"""How long one wait for a call lasts: short, so a blocked connection never looks dead."""


async def serve(settings: Settings) -> None:
    """Take calls until cancelled; each runs as a task of its own."""
    if settings.redis_url is None:
        raise RuntimeError("the tool worker needs STREAMHUB_REDIS_URL: it joins answers there")
    queue = redis.Redis.from_url(settings.redis_url)
    hub = StreamHub.from_url(settings.redis_url)
    logger.info("The tool worker takes calls from %s", settings.describe_backend())
    try:
        async with hub, anyio.create_task_group() as calls:
            while True:
                try:
                    popped = await queue.blpop([TOOL_QUEUE], timeout=_POP_S)
                except redis.RedisError as exc:
                    logger.warning("the tool worker lost Redis (retrying): %s", exc)
                    await anyio.sleep(_POP_S)
                    continue
                if popped is not None:
                    call = json.loads(popped[1])
                    calls.start_soon(
                        run_calculator, hub, call["key"], call["prompt"], settings.tokens_per_s
                    )
    finally:
        await queue.aclose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    anyio.run(serve, Settings.from_env())


if __name__ == "__main__":
    main()
