"""`JoinedSource`: a source of a generation that another process started.

The joined process never writes the stream itself: the generation has one writer, its
owner, which decides the order. The joined process posts its events to the
generation's inbox (stored, so nothing is lost while the owner's Pub/Sub connection
reconnects), one post in flight at a time, batching what it publishes meanwhile (the
producer's write path, on the other side of the inbox). It follows the stream from
the point it joined: its `joined` event says the owner took it, its own end or the
generation's end stops it, and a cancel of the generation reaches it that way too, on
whichever instance it runs (the generator fed by `run` sees the cancellation).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio

from . import _join_wire as wire
from ._cursor import Cursor
from ._errors import (
    JoinRefusedError,
    NotRunningError,
    ProducerStoppedError,
    SessionNotFoundError,
    StreamHubError,
    SubscriberLaggedError,
)
from ._events import JOINED_EVENT, SOURCE_EVENT, StreamEvent, encode_chunk, terminal_data
from ._feed import end_on_exit, feed
from ._join_poster import Poster
from ._logs import about
from ._sources import envelope_prefix, validate_source

if TYPE_CHECKING:
    from ._hub import StreamHub
    from ._subscription import Subscription

logger = logging.getLogger("fastapi_streamhub")


class JoinedSource:
    """A source of another process's running generation. Obtain it from `hub.join` and
    use it as `async with hub.join(key, source="worker-3") as joined:`; leaving the block
    ends the source with `done` (with `error` if the block raised).

    Its lease is renewed while it is open; if this process dies or stalls past it, the
    owner ends this source with `error` (`producer_lost`) and the other sources go on.
    """

    def __init__(
        self, hub: StreamHub, key: str, name: str, *, lease_s: float, accept_timeout_s: float
    ) -> None:
        self._hub = hub
        self._config = hub.config
        self._key = key
        self._name = validate_source(name)
        self._lease_s = lease_s
        self._accept_timeout_s = accept_timeout_s
        self._token = secrets.token_urlsafe(16)
        self._join_id = secrets.token_urlsafe(8)
        self._prefix = envelope_prefix(name) + ","
        self._generation = ""
        self._end: str | None = None
        self._last_seen = 0
        self._reason: str | None = None
        self._accepted = anyio.Event()
        self._stopped = anyio.Event()
        self._poster = Poster(
            hub.backend, hub.config, key=key, name=name, token=self._token, on_stop=self._stop
        )
        self._runs: set[anyio.CancelScope] = set()
        self._tasks: list[tuple[anyio.CancelScope, anyio.Event]] = []

    @property
    def key(self) -> str:
        """The stream key of the generation joined."""
        return self._key

    @property
    def name(self) -> str:
        """The source's name, carried by each of its events."""
        return self._name

    @property
    def generation(self) -> str:
        """The generation joined (known once open)."""
        return self._generation

    @property
    def stop_reason(self) -> str | None:
        """None while the source may write; then why not: its own end (`done`, `error`,
        `cancelled`), the generation's (`generation_done`, ...), or `unavailable`."""
        return self._reason

    async def wait(self) -> str:
        """Wait until this source can write no more; returns `stop_reason`."""
        await self._stopped.wait()
        return self._reason or "closed"

    async def open(self) -> Self:
        """Join: returns once the generation's owner has accepted this source.

        Raises:
            SessionNotFoundError: no stream under the key.
            NotRunningError: no generation of it is running.
            JoinRefusedError: the owner did not accept the join (the name is taken).
            BackendUnavailableError: storage did not answer.
        """
        status = await self._hub.status(self._key)
        if status is None:
            raise SessionNotFoundError(self._key)
        if status.status != "active" or not status.producer_running:
            raise NotRunningError(self._key)
        self._generation = status.generation
        subscription = self._hub.subscribe(
            self._key, after=Cursor(status.generation, status.last_seq)
        )
        await subscription.open()
        self._start("follow", lambda: self._follow(subscription, status.last_seq))
        try:
            await self._join()
        except BaseException:
            await self.aclose()
            raise
        self._poster.generation = self._generation
        self._start("post", lambda: self._poster.run(self._lease_s))
        return self

    def _start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` as a task of the hub's, until it returns or `aclose`."""
        scope, done = anyio.CancelScope(), anyio.Event()
        self._tasks.append((scope, done))

        async def task() -> None:
            try:
                with scope:
                    await run()
            finally:
                done.set()

        self._hub._require_supervisor().guard(f"joined source {self._name!r} {name}", task)

    async def _join(self) -> None:
        lease_ms = int(self._lease_s * 1000)
        posted = await self._poster.post(wire.join(self._token, self._join_id, lease_ms))
        if posted.generation != self._generation:
            raise NotRunningError(self._key)
        with anyio.move_on_after(self._accept_timeout_s):
            await _first(self._accepted, self._stopped)
        if not self._accepted.is_set():
            if self._stopped.is_set():
                raise NotRunningError(self._key)
            raise JoinRefusedError(self._key, self._name, self._accept_timeout_s)

    async def publish(self, chunk: object) -> None:
        """Append one chunk (as `Producer.publish`), attributed to this source.

        Raises:
            ProducerStoppedError: this source or its generation has ended.
            UnsupportedChunkError: `chunk` cannot be encoded as JSON.
        """
        self._check_open()
        name, data = encode_chunk(chunk)
        if len(data.encode("utf-8", "replace")) > self._config.max_event_bytes:
            limit = f"An event was larger than {self._config.max_event_bytes} bytes."
            await self.fail(limit, reason="limit")
            raise ProducerStoppedError(self._key, limit)
        await self._poster.put(name, data)
        self._check_open()

    def _check_open(self) -> None:
        if self._reason is not None or self._end is not None:
            raise ProducerStoppedError(self._key, self._reason or "closed")

    async def close(self) -> None:
        """End this source with `done`; returns once the owner has stored its end (or the
        generation ended first). Safe to call twice."""
        await self._finish("done", "{}")

    async def fail(self, message: str, *, reason: str = "failed") -> None:
        """End this source with `error`; `message` is shown to clients."""
        await self._finish("error", terminal_data(message=message, reason=reason))

    async def _finish(self, event: str, data: str) -> None:
        if self._end is None and self._reason is None:
            self._end = event
            self._poster.finish(event, data)
        with anyio.move_on_after(self._config.write_deadline_s):
            await self._stopped.wait()

    async def run(self, generator: AsyncIterator[object]) -> None:
        """Feed `generator` into this source, as the decorator feeds a first source: what
        it yields becomes events, its end this source's end. A cancel of the generation
        (or this source's end from elsewhere) stops it: its `finally` runs."""
        with anyio.CancelScope() as scope:
            self._runs.add(scope)
            if self._reason is not None:
                scope.cancel()
            try:
                await feed(self, generator)
            finally:
                self._runs.discard(scope)

    def _stop(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
        self._stopped.set()
        self._poster.halt()
        for scope in self._runs:
            scope.cancel()

    async def _follow(self, subscription: Subscription, after: int) -> None:
        """Watch the stream from where this source joined: its acceptance and its end. A
        reader that fell behind reads on from where it was."""
        try:
            while not await self._read(subscription):
                cursor = Cursor(self._generation, self._last_seen or after)
                subscription = self._hub.subscribe(self._key, after=cursor)
        except StreamHubError as exc:
            logger.warning(
                "stream %r (generation %s): source %r lost the stream: %s",
                self._key,
                self._generation,
                self._name,
                exc,
                extra=about(self._key, self._generation),
            )
        self._stop("unavailable")

    async def _read(self, subscription: Subscription) -> bool:
        """Read until this source ends (True), or until the reader fell behind (False)."""
        try:
            async for batch in subscription.batches():
                for event in batch:
                    self._last_seen = event.seq
                    if self._seen(event):
                        return True
        except SubscriberLaggedError:
            return False
        finally:
            with anyio.CancelScope(shield=True):
                await subscription.aclose()
        return True

    def _seen(self, event: StreamEvent) -> bool:
        """True once the event ends this source."""
        if event.generation != self._generation or event.event == "reset":
            self._stop("generation_ended")
            return True
        if event.terminal:
            self._stop(f"generation_{event.event}")
            return True
        if event.event != SOURCE_EVENT or not event.data.startswith(self._prefix):
            return False
        sourced = event.sourced
        if sourced.event == JOINED_EVENT and sourced.value == {"id": self._join_id}:
            self._accepted.set()
        elif sourced.terminal and self._accepted.is_set():
            self._stop(sourced.event or "done")
            return True
        return False

    async def aclose(self) -> None:
        """Stop following the stream and posting; safe to call twice. Call `close` first
        to end the source with `done` (`async with` does)."""
        self._stop("closed")
        self._halt()
        for _, done in self._tasks:
            await done.wait()

    def _halt(self) -> None:
        """Stop this process's tasks of the source at once, without a word to the owner."""
        for scope, _ in self._tasks:
            scope.cancel()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await end_on_exit(self, exc)
        finally:
            await self.aclose()


async def _first(*events: anyio.Event) -> None:
    """Return once any of `events` is set."""
    async with anyio.create_task_group() as group:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            group.cancel_scope.cancel()

        for event in events:
            group.start_soon(wait, event)
