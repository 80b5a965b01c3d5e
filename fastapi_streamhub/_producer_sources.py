"""The writing side a producer's sources share: one seq counter, one buffer, one order.

`Producer` (`_producer.py`) is what the first source and the user call; this base holds
what every source writes through (the buffer, the caps, the ends) and the sources
themselves: started here (`spawn`, `source`) or joined from another process
(`_join_owner.py`). See `_sources.py` for how their events are told apart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, cast

from ._errors import ProducerStoppedError, StaleGenerationError
from ._events import (
    MAIN_SOURCE,
    SOURCE_EVENT,
    TERMINAL_EVENTS,
    StreamEvent,
    metadata_json,
    terminal_data,
)
from ._feed import feed
from ._join_owner import JoinedSources
from ._logs import about
from ._producer_core import ProducerCore, ProducerPhase
from ._source import Source
from ._sources import EndsWith, Sources, validate_ends_with, validate_source

if TYPE_CHECKING:
    from ._inbox import InboxMessage
    from ._producer import Producer

logger = logging.getLogger("fastapi_streamhub")

_MISSING = frozenset({"producer_lost", "not_joined"})
"""Reasons of a source's `error` end that observers count apart."""


def _reason(data: str) -> object:
    """The `reason` of an end's data (a joined process's data is read with care)."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value.get("reason") if isinstance(value, dict) else None


CURRENT: ContextVar[Producer] = ContextVar("streamhub_producer")
"""The producer fed by the running generator, or by one of its sources' tasks."""


class SourcedProducer(ProducerCore):
    """The buffer and the sources of one generation; see `Producer` for the rest."""

    def _check_open(self) -> None:
        if self._stop_reason == "stale":
            raise StaleGenerationError(self.key)
        if self._phase is not ProducerPhase.RUNNING:
            raise ProducerStoppedError(self.key, self._stop_reason or "closed")

    def _limit_exceeded(self, size: int) -> str | None:
        config = self._config
        if size > config.max_event_bytes:
            return f"An event was larger than {config.max_event_bytes} bytes."
        if self._seq + 1 + self._ends_owed() > config.max_events:
            return f"The stream reached its limit of {config.max_events} events."
        if self._bytes + size > config.max_bytes:
            return f"The stream reached its limit of {config.max_bytes} bytes."
        return None

    def _end_over_limit(self, limit: str) -> None:
        """End the whole generation with `error`: an event would pass `limit`."""
        logger.warning(
            "stream %r (generation %s): %s",
            self.key,
            self.generation,
            limit,
            extra=about(self.key, self.generation),
        )
        self._end_generation("error", terminal_data(message=limit, reason="limit"))

    def _ends_owed(self) -> int:
        """Terminal events still to come: one per running source, and the generation's."""
        return 1 if self._sources is None else len(self._sources) + 1

    def _enqueue(self, name: str | None, data: str) -> None:
        self._seq += 1
        self._buffer.pending.append(StreamEvent(self.generation, self._seq, name, data))
        self._writer.wake(self)

    def _end_generation(self, event: str, data: str) -> None:
        """Buffer the generation's terminal event: nothing more may be published."""
        if self._phase is ProducerPhase.RUNNING:
            self._phase = ProducerPhase.CLOSING
            self._enqueue(event, data)

    @property
    def ends_with(self) -> EndsWith:
        """When a generation with several sources ends: once every source has ended
        (`"all"`, the default), or with its first source, which ends the others as
        `cancelled` (`"first"`)."""
        return self._ends_with

    @ends_with.setter
    def ends_with(self, value: EndsWith) -> None:
        self._ends_with = validate_ends_with(value)
        if self._sources is not None:
            self._sources.ends_with = self._ends_with

    @property
    def sources(self) -> list[str]:
        """The running sources of this generation, the first (`"main"`) included."""
        if self._sources is None:
            return [MAIN_SOURCE] if self._phase is ProducerPhase.RUNNING else []
        return list(self._sources)

    @property
    def ended_sources(self) -> list[str]:
        """The sources of this generation that have ended, in the order they did."""
        return [] if self._sources is None else list(self._sources.ended)

    @property
    def source_count(self) -> int:
        """How many sources this generation has had, the first included."""
        if self._sources is None:
            return 1
        return len(self._sources) + len(self._sources.ended)

    def source(self, name: str) -> Source:
        """Start another source of this generation, named `name`, written by the caller:
        `async with producer.source("search") as search: await search.publish(...)`.

        Raises:
            ProducerStoppedError: the generation has ended (or reached its event limit).
            ValueError: `name` is not 1 to 100 printable characters, or is taken.
        """
        self._add_source(name)
        return Source(cast("Producer", self), name)

    def _add_source(self, name: str) -> Sources:
        validate_source(name)
        self._check_open()
        sources = self._sources
        if sources is None:
            sources = self._sources = Sources(self._ends_with)
        if self._seq + 2 + self._ends_owed() > self._config.max_events:
            limit = f"The stream reached its limit of {self._config.max_events} events."
            self._end_generation("error", terminal_data(message=limit, reason="limit"))
            raise ProducerStoppedError(self.key, limit)
        sources.add(name)
        if (observer := self._config.observer) is not None:
            observer.source_started(cast("Producer", self), name)
        return sources

    def spawn(self, name: str, stream: AsyncIterator[object]) -> Source:
        """Run `stream` (an async generator) as another source of this generation, in a
        task of the hub's: what it yields is attributed to `name`, in the one order of
        the generation; it ends as the first source's generator does (`done`, or
        `error`). A cancel of the generation stops it (its `finally` runs).

        Raises:
            ProducerStoppedError: the generation has ended (or reached its event limit).
            ValueError: `name` is not 1 to 100 printable characters, or is taken.
            TypeError: `stream` is not an async iterator (an async generator function
                must be called: `spawn("search", search())`).
            RuntimeError: this producer was not started by a hub.
        """
        if not hasattr(stream, "__anext__"):
            raise TypeError(f"spawn needs an async generator (called), not {stream!r}")
        if self._start_task is None:
            raise RuntimeError("only a producer started by a StreamHub spawns sources")
        self._add_source(name)
        source = Source(cast("Producer", self), name)

        async def run() -> None:
            CURRENT.set(cast("Producer", self))
            await feed(source, stream)

        self._start_source_task(name, run)
        return source

    def _start_source_task(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` in a task of the hub's, stopped with the generation's sources."""
        sources, start_task = self._sources, self._start_task
        if sources is None or start_task is None:
            raise RuntimeError("only a producer started by a StreamHub runs source tasks")
        sources.expect_task(name)
        start_task(f"source {name!r} of {self.key!r}", lambda: sources.run_task(name, run))

    def _on_source_message(self, message: InboxMessage) -> None:
        """A joined source's message, from the inbox (`_join_owner.py`)."""
        self._joined_sources().on_message(message)

    def expect(self, name: str, *, within_s: float | None = None) -> None:
        """Keep the generation open for a source that another process will join as
        `name` (`hub.join(key, source=name)`): it counts as running from now on, so the
        generation does not end before it has joined and ended. If no process has joined
        as `name` within `within_s` (the hub's `start_timeout_s` by default), the source
        ends with `error` (`not_joined`).

        Raises:
            ProducerStoppedError: the generation has ended (or reached its event limit).
            ValueError: `name` is not 1 to 100 printable characters, or is taken.
            RuntimeError: this producer was not started by a hub.
        """
        if self._start_task is None:
            raise RuntimeError("only a producer started by a StreamHub expects joined sources")
        self._add_source(name)
        within = self._config.start_timeout_s if within_s is None else within_s
        self._joined_sources().expect(name, within)

    def _joined_sources(self) -> JoinedSources:
        if self._joined is None:
            self._joined = JoinedSources(cast("Producer", self))
        return self._joined

    def _join_source(self, name: str, join_id: str, *, expected: bool = False) -> None:
        """Accept another process's join: its `joined` event tells it so. An expected
        name is already a running source."""
        sources = self._sources if expected else self._add_source(name)
        if sources is None:
            raise ValueError(f"source {name!r} was not expected")
        self._enqueue(SOURCE_EVENT, sources.wrap(name, "joined", terminal_data(id=join_id)))

    def _publish_joined(self, name: str, pairs: list[tuple[str | None, str]]) -> None:
        """Buffer a joined source's events: no waiting (the inbox bounds how many come)."""
        sources = self._sources
        for event, data in pairs:
            if sources is None or not sources.running(name) or event in TERMINAL_EVENTS:
                return
            size = len(data) if data.isascii() else len(data.encode("utf-8", "replace"))
            limit = self._limit_exceeded(size)
            if limit is not None:
                self._end_over_limit(limit)
                return
            self._bytes += size
            self._enqueue(SOURCE_EVENT, sources.wrap(name, event, data))

    def _source_running(self, name: str) -> bool:
        return self._sources is not None and self._sources.running(name)

    def _end_source(self, name: str, event: str, data: str) -> None:
        """Buffer the end of source `name`, then the generation's own when it is due."""
        sources = self._sources
        if self._phase is not ProducerPhase.RUNNING or sources is None or not sources.end(name):
            return
        self._enqueue(SOURCE_EVENT, sources.wrap(name, event, data))
        self._report_source_end(name, event, data)
        if name == MAIN_SOURCE and sources.ends_with == "first":
            ended = terminal_data(reason="first_source_ended")
            for other in list(sources):
                sources.end(other)
                self._enqueue(SOURCE_EVENT, sources.wrap(other, "cancelled", ended))
                self._report_source_end(other, "cancelled", ended)
            sources.interrupt()
            if event != "done":
                self._end_generation(event, data)
        if not len(sources):
            self._end_generation("done", metadata_json(self._metadata))

    def _report_source_end(self, name: str, event: str, data: str) -> None:
        """Tell observers how a source other than the first ended: its event, or the
        reason of an `error` that says the source itself went missing."""
        observer = self._config.observer
        if observer is None or name == MAIN_SOURCE:
            return
        outcome = event
        if event == "error":
            reason = _reason(data)
            outcome = reason if reason in _MISSING else event
        observer.source_ended(cast("Producer", self), name, outcome)

    def _report_sources_left(self) -> None:
        """The generation stopped: the sources still running ended with it (told once)."""
        sources, observer = self._sources, self._config.observer
        if sources is None or observer is None or sources.left_told:
            return
        sources.left_told = True
        for name in sources:
            if name != MAIN_SOURCE:
                observer.source_ended(cast("Producer", self), name, "with_generation")
