"""The sources of one generation: who may still write, and how their events are told apart.

A generation starts with one source, the first (`"main"`): the decorated generator, or
whoever holds the producer. Once a second source starts, every event of a source other
than the first is stored and sent as one reserved event, `source`, whose data is a JSON
envelope naming it: `{"source":"search","event":"tool_call","data":...}` (`event`
omitted for a chunk). The first source's events stay exactly what they always were, so
a stream that never fans in is byte for byte today's, and a client that knows nothing
of sources still reads the first source's answer.

Every source of a fanned-in generation ends with an envelope of its own (`done`,
`error`, `cancelled`); the generation then ends with one plain terminal event. The
order of all of it is the order the single writer of the generation's process takes
events in: one seq counter, one buffer, so storage assigns the seqs without a gap.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

import anyio

from ._events import MAIN_SOURCE

EndsWith = Literal["all", "first"]
"""When a fanned-in generation ends: once every source has ended (`all`), or as soon as
the first source ends, which ends the others as `cancelled` (`first`)."""

MAX_SOURCE_CHARS: Final = 100

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode

StartTask = Callable[[str, Callable[[], Awaitable[None]]], None]
"""Runs a per-stream task under the hub's supervision (`Supervisor.guard`)."""


def validate_source(name: object) -> str:
    """A source name is shown to users and keyed on: short, printable text."""
    if not isinstance(name, str):
        raise TypeError(f"a source name must be a str, not {type(name).__qualname__}")
    if not name or len(name) > MAX_SOURCE_CHARS or not name.isprintable():
        raise ValueError(
            f"source name {name!r} must be 1 to {MAX_SOURCE_CHARS} printable characters"
        )
    return name


def validate_ends_with(value: object) -> EndsWith:
    if value not in get_args(EndsWith):
        raise ValueError(f"ends_with must be one of {get_args(EndsWith)}, not {value!r}")
    return value  # type: ignore[return-value]


def envelope_prefix(source: str) -> str:
    """The start of every envelope of `source`, encoded once per source."""
    return '{"source":' + _dumps(source)


def wrap(prefix: str, event: str | None, data: str) -> str:
    """`data` (JSON text) of event `event` inside its source's envelope."""
    if event is None:
        return f'{prefix},"data":{data}}}'
    return f'{prefix},"event":{_dumps(event)},"data":{data}}}'


@dataclass(slots=True)
class _Task:
    """A source's own task in this process: interruptible, and known once stopped."""

    scope: anyio.CancelScope | None = None
    stopped: anyio.Event = field(default_factory=anyio.Event)


class Sources:
    """The running sources of one generation and the tasks that feed them here."""

    def __init__(self, ends_with: EndsWith) -> None:
        self.ends_with: EndsWith = ends_with
        self._prefixes: dict[str, str] = {MAIN_SOURCE: envelope_prefix(MAIN_SOURCE)}
        self._running: set[str] = {MAIN_SOURCE}
        self.ended: list[str] = []
        """The sources that have ended, in the order they did."""
        self._tasks: dict[str, _Task] = {}
        self._interrupted = False
        self.left_told = False
        """Whether observers were told of the sources left running at the generation's end."""

    def __len__(self) -> int:
        """How many sources are running."""
        return len(self._running)

    def __iter__(self) -> Iterator[str]:
        """The running sources, in the order they started."""
        return (name for name in self._prefixes if name in self._running)

    def add(self, name: str) -> None:
        """Start source `name`: each name is used once per generation."""
        validate_source(name)
        if name in self._prefixes:
            raise ValueError(f"this generation already has a source named {name!r}")
        self._prefixes[name] = envelope_prefix(name)
        self._running.add(name)

    def expect_task(self, name: str) -> None:
        """A task will feed `name`: `stopped` waits for it from now on, even before it runs."""
        self._tasks[name] = _Task()

    def running(self, name: str) -> bool:
        return name in self._running

    def end(self, name: str) -> bool:
        """Record that `name` ended; False if it was not running."""
        if name not in self._running:
            return False
        self._running.discard(name)
        self.ended.append(name)
        return True

    def wrap(self, name: str, event: str | None, data: str) -> str:
        return wrap(self._prefixes[name], event, data)

    async def run_task(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run the task that feeds source `name`, interruptible by `interrupt`."""
        task = self._tasks[name]
        try:
            with anyio.CancelScope() as scope:
                task.scope = scope
                if self._interrupted or (name in self._prefixes and name not in self._running):
                    scope.cancel()
                await body()
        finally:
            task.scope = None
            task.stopped.set()

    def interrupt(self) -> None:
        """Stop every task feeding a source here, now and from now on: each generator's
        `finally` runs."""
        self._interrupted = True
        for task in self._tasks.values():
            if task.scope is not None:
                task.scope.cancel()

    async def stopped(self) -> None:
        """Return once every task feeding a source here has stopped."""
        for task in list(self._tasks.values()):
            await task.stopped.wait()
