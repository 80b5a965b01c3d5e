"""A Taskiq task per stream function, and the hub it runs under in each worker."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, TaskiqEvents, TaskiqState

from .._hub import StreamHub
from .._jobs import JobOutcome, StreamJob, coerce_job

StreamFunction = Callable[..., AsyncIterator[object]]


def stream_task(
    broker: AsyncBroker, hub: StreamHub, *, task_name: str | None = None, **labels: Any
) -> Callable[[StreamFunction], StreamTask]:
    """Make a Taskiq task of an async-generator function that produces a stream.

    The task takes a job (from `@dispatched_stream` or `hub.dispatch`) and runs
    `hub.run(job, function(**job.params))` in the worker. The worker process runs `hub`
    from Taskiq's worker startup to its shutdown.

    Args:
        broker: the Taskiq broker; a Redis one (`RedisStreamBroker`) in production.
        hub: the worker's hub, on the same storage as the web processes'.
        task_name: the task's name; by default the function's module and name.
        **labels: Taskiq labels of the task. A `timeout` ends the stream with `error`
            (`interrupted`) when it runs out.
    """

    def decorate(function: StreamFunction) -> StreamTask:
        if not inspect.isasyncgenfunction(function):
            raise TypeError(f"@stream_task needs an async generator function, not {function!r}")
        name = task_name or f"{function.__module__}:{function.__qualname__}"
        return StreamTask(broker, hub, function, task_name=name, labels=labels)

    return decorate


class StreamTask:
    """A Taskiq task that produces dispatched streams with one generator function.

    Make it with `@stream_task(broker, hub)`.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        hub: StreamHub,
        function: StreamFunction,
        *,
        task_name: str,
        labels: Mapping[str, Any],
    ) -> None:
        self.hub = hub
        """The hub the worker runs jobs under."""
        self.function = function
        """The generator function; a job's params are its keyword arguments."""

        async def run_job(job: dict[str, Any]) -> str:
            return (await self.run(job)).reason

        run_job.__name__ = run_job.__qualname__ = function.__name__
        run_job.__module__ = function.__module__
        self.task: AsyncTaskiqDecoratedTask[[dict[str, Any]], Coroutine[Any, Any, str]] = (
            broker.register_task(run_job, task_name=task_name, **labels)
        )
        """The Taskiq task; it returns why the stream ended, or why the job was refused."""
        _keep_running(broker, hub)

    async def dispatch(self, job: StreamJob) -> None:
        """Put `job` on the queue: the `dispatch` of `@dispatched_stream` and `hub.dispatch`."""
        await self.task.kiq(job.as_dict())

    async def run(self, job: StreamJob | Mapping[str, Any]) -> JobOutcome:
        """Run `job` in this process (what the task does in the worker)."""
        job = coerce_job(job)
        params = job.params
        return await self.hub.run(job, lambda: self.function(**params))


_running: weakref.WeakKeyDictionary[AsyncBroker, set[int]] = weakref.WeakKeyDictionary()


def _keep_running(broker: AsyncBroker, hub: StreamHub) -> None:
    """Start `hub` when a worker process of `broker` starts, stop it when it stops."""
    hubs = _running.setdefault(broker, set())
    if id(hub) in hubs:
        return
    hubs.add(id(hub))
    service = HubService(hub)
    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, service.start)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, service.stop)


class HubService:
    """Runs a hub in a task of its own.

    Taskiq starts a worker's resources in one task and stops them in another, while a
    hub (an anyio task group) must be entered and left by the same task: this task.
    """

    def __init__(self, hub: StreamHub) -> None:
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, state: TaskiqState | None = None) -> None:
        """Start the hub; returns once it runs (raises what stopped it from starting)."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._serve(started), name="streamhub hub")
        await started

    async def _serve(self, started: asyncio.Future[None]) -> None:
        try:
            async with self._hub:
                started.set_result(None)
                await self._stopping.wait()
        except BaseException as exc:
            if started.done():
                raise
            started.set_exception(exc)

    async def stop(self, state: TaskiqState | None = None) -> None:
        """Stop the hub: running streams get the hub's shutdown grace, then end."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task
