"""Reading streams through the programmatic API, bounded in time, and the checks the
fault tests make on what readers got and on the hub afterwards."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from fastapi_streamhub import StreamEvent, StreamHub
from fastapi_streamhub._runner import drive


async def collect(
    hub: StreamHub, key: str, after: str | None = None, *, timeout_s: float = 10.0
) -> list[StreamEvent]:
    """Every event after `after` up to and including the terminal one."""
    got: list[StreamEvent] = []
    with anyio.fail_after(timeout_s):
        async with hub.subscribe(key, after=after) as subscription:
            async for event in subscription:
                got.append(event)
    return got


@asynccontextmanager
async def two_hubs(url: str, **options: Any) -> AsyncIterator[tuple[StreamHub, StreamHub]]:
    """Two started hubs on the same Redis, as two instances of one app would be."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(StreamHub.from_url(url, **options))
        b = await stack.enter_async_context(StreamHub.from_url(url, **options))
        yield a, b


class Reader:
    """A reader following one stream in the background, from its start to its end.

    `opened` is set once its subscription is open (the stream exists and the reader
    follows it), `events` grows as events arrive, and `ended` is set after the last.
    """

    def __init__(self, hub: StreamHub, key: str, *, timeout_s: float) -> None:
        self.hub = hub
        self.key = key
        self.timeout_s = timeout_s
        self.events: list[StreamEvent] = []
        self.opened = anyio.Event()
        self.ended = anyio.Event()
        self._arrived = anyio.Event()

    async def run(self) -> None:
        try:
            with anyio.fail_after(self.timeout_s):
                async with self.hub.subscribe(self.key) as subscription:
                    self.opened.set()
                    async for event in subscription:
                        self.events.append(event)
                        self._arrived.set()
                        self._arrived = anyio.Event()
        finally:
            self.ended.set()
            self._arrived.set()

    async def wait_for_seq(self, seq: int) -> None:
        """Return once the reader has received the event `seq`, or has ended."""
        while not self.ended.is_set() and (not self.events or self.events[-1].seq < seq):
            await self._arrived.wait()


@asynccontextmanager
async def readers(
    *places: tuple[StreamHub, str], timeout_s: float = 30.0
) -> AsyncIterator[list[Reader]]:
    """Start one `Reader` per (hub, key), each open before the block runs; leaving the
    block waits until every reader has ended."""
    started = [Reader(hub, key, timeout_s=timeout_s) for hub, key in places]
    async with anyio.create_task_group() as group:
        await _start_all(group, started)
        yield started


async def _start_all(group: TaskGroup, started: list[Reader]) -> None:
    for reader in started:
        group.start_soon(reader.run)
    for reader in started:
        await reader.opened.wait()


def assert_exact(
    events: Sequence[StreamEvent], values: Sequence[object], terminal: str = "done"
) -> None:
    """`events` are `values` as seq 1..n of one generation, then the `terminal` event."""
    assert [e.value for e in events[:-1]] == list(values)
    assert [e.seq for e in events] == list(range(1, len(values) + 2))
    assert len({e.generation for e in events}) == 1
    assert events[-1].event == terminal, events[-1]


async def assert_healthy(hub: StreamHub, *, restarts: int | None = 0) -> None:
    """The hub is ready: storage answers and every shared task runs (and, unless
    `restarts` is None, none of them was restarted more than that)."""
    health = await hub.health()
    assert health.ready, health
    assert health.tasks and all(task.running for task in health.tasks.values()), health
    if restarts is not None:
        assert all(task.restarts <= restarts for task in health.tasks.values()), health


async def run_a_new_stream(producing: StreamHub, reading: StreamHub, key: str) -> None:
    """The hubs still serve: a stream started now on one is read whole on the other."""
    producer, created = await producing.register(key)
    assert created
    for word in ("still", " serving"):
        await producer.publish(word)
    assert await producer.close() == "done"
    assert_exact(await collect(reading, key), ["still", " serving"])


async def start(hub: StreamHub, key: str, generator: AsyncGenerator[object, None]) -> None:
    """Start `key`'s generation with `generator` as its first source, as the decorator does."""
    producer, created = await hub.register(key)
    assert created
    hub.spawn(producer, lambda: drive(producer, generator))


async def stalled(started: anyio.Event, cleaned_up: anyio.Event) -> AsyncGenerator[str, None]:
    """A generator that yields once, then waits forever: only a cancel heard in time can
    stop it. Its cleanup awaits, as real cleanup does (closing an upstream connection);
    `cleaned_up` is set once it has finished."""
    try:
        yield "waiting"
        started.set()
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.01)
        cleaned_up.set()
