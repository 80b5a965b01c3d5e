"""StreamHub: the process's backend, settings, and background machinery.

A producer task belongs to the hub, not to the request that started it: a client
leaving never stops a generation; only completion, an error, a cancel (from any
instance) or shutdown do.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ._config import HubConfig
from ._cursor import Cursor, coerce_cursor, new_generation
from ._errors import BackendUnavailableError, HubNotStartedError, SessionBusyError
from ._events import terminal_data
from ._fanout import Fanout, Tick
from ._hooks import wire_app
from ._keys import validate_key
from ._producer import Producer
from ._status import CancelResult, StreamStatus, producer_stopped, stream_status
from ._subscription import Subscription
from ._writer import Writer
from .backends._base import Backend, Control, Lease, Notification
from .backends.memory import MemoryBackend

logger = logging.getLogger("fastapi_streamhub")


class StreamHub:
    """Resumable streams for one process. `StreamHub()` keeps them in memory;
    `StreamHub.from_url("redis://...")` shares them between instances through Redis.

    Start it with `FastAPI(lifespan=hub.lifespan)`, `hub.init_app(app)`, or `async with hub:`.
    """

    def __init__(self, *, backend: Backend | None = None, **options: Any) -> None:
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self.config = HubConfig(**options)
        self.instance_id = secrets.token_hex(8)
        self._fanout = Fanout(self.backend)
        self._writer: Writer | None = None
        self._producers: dict[str, Producer] = {}
        self._task_group: TaskGroup | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "streamhub:",
        socket_timeout_s: float = 5.0,
        max_connections: int = 64,
        **options: Any,
    ) -> StreamHub:
        """A hub on Redis; options as for `StreamHub()`.

        `url` is `redis://`, `rediss://`, `unix://`, or
        `redis+sentinel://host:port[,host:port]/service[/db]` for a Sentinel-managed master.

        `socket_timeout_s` bounds each Redis command, so a stalled server turns into
        retries (which the seq-based appends make safe) instead of a hang.
        """
        from .backends.redis import RedisBackend

        backend = RedisBackend.from_url(
            url, prefix=prefix, socket_timeout_s=socket_timeout_s, max_connections=max_connections
        )
        return cls(backend=backend, **options)

    @property
    def started(self) -> bool:
        return self._task_group is not None

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise HubNotStartedError()
        return self._writer

    def _require_started(self) -> TaskGroup:
        if self._task_group is None:
            raise HubNotStartedError()
        return self._task_group

    async def __aenter__(self) -> StreamHub:
        if self._task_group is not None:
            raise RuntimeError("this StreamHub is already started")
        await self.backend.open(self._on_notification, self._fanout.resync)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._writer = Writer(
            self.backend, retention_ms=self.config.retention_ms, spawn=task_group.start_soon
        )
        task_group.start_soon(self._writer.run)
        task_group.start_soon(self._keep_leases)
        task_group.start_soon(self._tick)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._require_started()
        try:
            with anyio.CancelScope(shield=True):
                await self._shutdown_producers()
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
        finally:
            self._task_group = None
            self._writer = None
            await self.backend.aclose()

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        """FastAPI lifespan: mounts the routes of `@resumable_stream`, then starts the hub."""
        app.state.streamhub = self
        wire_app(app)
        async with self:
            yield {"streamhub": self}

    def init_app(self, app: Any) -> None:
        """Run the hub inside `app`'s existing lifespan, and mount its stream routes now.

        The hub starts after the app's own startup and stops before its cleanup, so
        producers finishing during the shutdown grace still have the app's resources.
        Routes declared later are mounted when `app.openapi()` builds the schema, and
        at startup.
        """
        inner: Callable[[Any], Any] = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Mapping[str, Any] | None]:
            async with inner(app) as state, self.lifespan(app) as hub_state:
                yield {**(state or {}), **hub_state}

        app.router.lifespan_context = lifespan
        wire_app(app)

    async def _shutdown_producers(self) -> None:
        producers = list(self._producers.values())
        if not producers:
            return
        with anyio.move_on_after(self.config.shutdown_grace_s):
            for producer in producers:
                await producer.wait()
        async with anyio.create_task_group() as group:
            for producer in producers:
                if not producer.finished:
                    logger.warning("stream %r: cancelled by shutdown", producer.key)
                    group.start_soon(self._end_for_shutdown, producer)

    async def _end_for_shutdown(self, producer: Producer) -> None:
        producer.interrupt()
        with anyio.move_on_after(self.config.cancel_wait_s):
            await producer.fail(
                "The server shut down before the stream finished.", reason="shutdown"
            )

    def _on_notification(self, key: str, note: Notification) -> None:
        self._fanout.dispatch(key, note)

    async def _keep_leases(self) -> None:
        """Renew the lease of every running producer, all in one backend call."""
        while True:
            await anyio.sleep(self.config.lease_ttl_s / 3)
            running = [p for p in self._producers.values() if p.stop_reason is None]
            if running:
                await self._renew(running)

    async def _tick(self) -> None:
        """Wake idle subscribers now and then, to check on their producer."""
        while True:
            await anyio.sleep(self.config.idle_check_s)
            self._fanout.tick()

    async def _renew(self, producers: list[Producer]) -> None:
        try:
            outcomes = await self.backend.refresh_many(
                [Lease(p.key, p.generation) for p in producers],
                lease_ms=self.config.lease_ms,
                retention_ms=self.config.retention_ms,
            )
        except BackendUnavailableError as exc:
            logger.warning("%d leases not renewed: %s", len(producers), exc)
            return
        for producer, outcome in zip(producers, outcomes, strict=True):
            producer.lease_renewed(outcome)

    async def register(self, key: str) -> tuple[Producer, bool]:
        """Claim `key` for a new generation; returns `(producer, created)`.

        If this process already produces `key`, that producer is returned with
        `created=False`.

        Raises:
            SessionBusyError: another instance is producing `key`.
        """
        self._require_started()
        validate_key(key)
        existing = self._producers.get(key)
        if existing is not None and existing.stop_reason is None:
            return existing, False
        created, state = await self.backend.claim(
            key,
            generation=new_generation(),
            owner=self.instance_id,
            lease_ms=self.config.lease_ms,
            retention_ms=self.config.retention_ms,
        )
        if not created:
            raise SessionBusyError(key, state.generation)
        producer = Producer(
            key=key,
            generation=state.generation,
            backend=self.backend,
            writer=self._require_writer(),
            fanout=self._fanout,
            config=self.config,
            on_finished=self._forget,
        )
        self._producers[key] = producer
        self._fanout.open_local(key, producer.generation)
        self._require_started().start_soon(
            self._watch_control, producer, name=f"streamhub control {key!r}"
        )
        return producer, True

    async def _watch_control(self, producer: Producer) -> None:
        """Cancel signals for `producer`, set up off the start path: a signal missed in
        between is not lost, as the next write or lease refresh finds the stream ended."""
        try:
            await self._fanout.add(producer.key, "control", producer.on_control)
        except BackendUnavailableError as exc:
            logger.warning("stream %r: no cancel signals until a write: %s", producer.key, exc)

    async def _forget(self, producer: Producer) -> None:
        """Run by the producer's own wind-up, so its end costs no task of its own."""
        if self._producers.get(producer.key) is producer:
            del self._producers[producer.key]
        await self._fanout.remove(producer.key, "control", producer.on_control)

    def spawn(self, producer: Producer, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` as the producer's task: owned by the hub, interrupted by cancel or stale."""
        self._require_started().start_soon(
            producer.run_task, run, name=f"streamhub producer {producer.key!r}"
        )

    def get(self, key: str) -> Producer | None:
        """The producer of `key` running in this process, if any."""
        return self._producers.get(key)

    def subscribe(
        self, key: str, after: str | Cursor | None = None, *, max_queue: int | None = None
    ) -> Subscription:
        """Replay the events after `after` (a cursor or event id), then follow live."""
        self._require_started()
        return Subscription(
            key=validate_key(key),
            after=coerce_cursor(after),
            backend=self.backend,
            fanout=self._fanout,
            config=self.config,
            max_queue=max_queue or self.config.max_queue,
        )

    async def status(self, key: str) -> StreamStatus | None:
        (state,) = await self.backend.states([validate_key(key)])
        return None if state is None else stream_status(state)

    async def active(self, keys: Sequence[str]) -> dict[str, bool]:
        """Which of `keys` have a running producer, in one round trip."""
        states = await self.backend.states([validate_key(k) for k in keys])
        return {
            key: state is not None and state.status == "active" and not state.lease_expired
            for key, state in zip(keys, states, strict=False)
        }

    async def cancel(self, key: str, *, wait: float | None = None) -> CancelResult | None:
        """Cancel `key` wherever its producer runs; None if there is no such stream.

        The `cancelled` event is stored at once; with `wait`, also wait up to that
        many seconds for the producer to confirm it stopped.
        """
        self._require_started()
        validate_key(key)
        stopped = anyio.Event()

        def on_control(note: Notification | Tick | None) -> None:
            if isinstance(note, Control) and note.kind == "stopped":
                stopped.set()

        await self._fanout.add(key, "control", on_control)
        try:
            cancelled, state = await self.backend.finish(
                key,
                generation=None,
                event="cancelled",
                data=terminal_data(reason="cancelled"),
                retention_ms=self.config.retention_ms,
                only_if_lapsed=False,
            )
            if state is None:
                return None
            if wait and state.owner and not state.lease_expired:
                with anyio.move_on_after(wait):
                    await stopped.wait()
        finally:
            await self._fanout.remove(key, "control", on_control)
        (final,) = await self.backend.states([key])
        return CancelResult(key, cancelled, producer_stopped(final), stream_status(final or state))

    async def remove(self, key: str) -> bool:
        """Cancel `key` if it is running, then delete it; True if it existed."""
        await self.cancel(key)
        return await self.backend.remove(validate_key(key))
