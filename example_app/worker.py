"""The demo's job queue worker: with `STREAMHUB_DEMO_WORKER=1`, the web instances only
serve the chat's streams, and this process generates the answers.

    STREAMHUB_REDIS_URL=redis://... taskiq worker example_app.worker:broker --workers 1

Jobs travel through Taskiq's Redis Streams broker on the same Redis as the streams. A web
instance can then be restarted mid-answer: the answer goes on here, and the reloaded page
shows it complete. `make demo-worker` runs Redis, this worker and two web instances.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from taskiq import TaskiqEvents, TaskiqState
from taskiq_redis import RedisStreamBroker

from example_app.answers import answer, build_model
from example_app.settings import Settings
from fastapi_streamhub import Event, StreamHub
from fastapi_streamhub.taskiq import stream_task

settings = Settings.from_env()
if settings.redis_url is None:
    raise RuntimeError("the worker needs STREAMHUB_REDIS_URL: the web instances read its streams")

broker = RedisStreamBroker(settings.redis_url, queue_name="streamhub-demo-answers")
hub = StreamHub.from_url(settings.redis_url, compact_after_s=settings.compact_after_s)
model = build_model(settings)


@stream_task(broker, hub)
async def answer_prompt(prompt: str) -> AsyncIterator[str | Event]:
    """Generate the answer to `prompt` under the generation the web instance claimed."""
    async for event in answer(model, prompt):
        yield event


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def close_model(state: TaskiqState) -> None:
    """After the hub has stopped (its handler was registered first): no stream uses it."""
    await model.aclose()
