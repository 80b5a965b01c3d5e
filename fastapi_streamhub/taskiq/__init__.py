"""Streams produced by Taskiq workers: the web process serves, a worker generates.

Needs the `taskiq` extra (`pip install 'fastapi-streamhub[taskiq]'`: Taskiq and its
Redis broker); the core never imports it. `stream_task` turns an async-generator
function into a Taskiq task that runs a dispatched job under its claimed generation,
and gives the `dispatch` that `@dispatched_stream` hands jobs to::

    broker = RedisStreamBroker(REDIS_URL)
    hub = StreamHub.from_url(REDIS_URL)

    @stream_task(broker, hub)
    async def answer(prompt: str) -> AsyncIterator[str]:
        async for token in llm.stream(prompt):
            yield token

    @app.post("/chat/{chat_id}")
    @dispatched_stream("chat:{chat_id}", dispatch=answer.dispatch)
    async def chat(chat_id: str, prompt: Prompt) -> dict[str, Any]:
        return {"prompt": prompt.text}

`taskiq worker module:broker` then runs the hub in each worker process, from worker
startup to shutdown.
"""

from ._tasks import StreamTask, stream_task

__all__ = ["StreamTask", "stream_task"]
