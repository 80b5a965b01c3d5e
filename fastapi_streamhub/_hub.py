"""StreamHub: the process's backend, settings, and background machinery.

A producer task belongs to the hub, not to the request that started it: a client
leaving never stops a generation; only completion, an error, a cancel (from any
instance) or shutdown do. Every task the hub starts is supervised (`_supervisor.py`),
so nothing one stream does can stop the others.

The hub owns the parts and their lifetime; each public method hands over to the part
whose job it is: starting producers (`_launcher.py`), what readers ask
(`_reads.py`), what acts on a stream (`_commands.py`), the shared tasks
(`_shared_tasks.py`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Unpack

import anyio

from ._commands import StreamCommands
from ._config import HubConfig, HubOptions
from ._cursor import Cursor
from ._errors import HubNotStartedError
from ._fanout import Fanout
from ._finishing import Finishing
from ._health import HubHealth, check_health
from ._hooks import wire_app
from ._inbox import InboxReader
from ._jobs import JobOutcome, JobStream, StreamJob, claim_job, send_job
from ._joined import JoinedSource
from ._keys import validate_key
from ._launcher import Launcher
from ._local import LocalProducers
from ._policy import StreamPolicy
from ._producer import Producer
from ._reads import StreamReads
from ._result import StreamResult
from ._send_guard import SendGuard
from ._shared_tasks import SharedTasks
from ._status import CancelResult, StreamStatus
from ._steering import Steered
from ._subscription import Subscription
from ._supervisor import Supervisor
from ._writer import Writer
from .backends._base import Backend
from .backends.memory import MemoryBackend


class StreamHub:
    """Resumable streams for one process. `StreamHub()` keeps them in memory;
    `StreamHub.from_url("redis://...")` shares them between instances through Redis.

    Start it with `FastAPI(lifespan=hub.lifespan)`, `hub.init_app(app)`, or `async with hub:`.
    Settings are the keyword arguments of `HubConfig` (`lease_ttl_s=...`).
    """

    def __init__(self, *, backend: Backend | None = None, **options: Unpack[HubOptions]) -> None:
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        """The storage backend."""
        self.config = HubConfig(**options)
        """The settings."""
        self.instance_id = secrets.token_hex(8)
        """This process's id as a producer owner."""
        self._fanout = Fanout(self.backend)
        self._producers = LocalProducers(self.backend, self.config)
        self._tasks = SharedTasks()
        self._send_guard = SendGuard(self.config.send_timeout_s)
        self._inboxes = InboxReader(self.backend, self.config)
        self._finishing = Finishing(
            self.backend, self.config, self._fanout, self.instance_id, self._producers.__iter__
        )
        self._launcher = Launcher(
            self.backend,
            self.config,
            self._fanout,
            self._producers,
            self._inboxes,
            self._finishing,
            self._tasks,
            self.instance_id,
        )
        self._reads = StreamReads(self.backend, self._fanout, self.config, self._tasks)
        self._commands = StreamCommands(
            self.backend, self.config, self._fanout, self._producers, self._reads, self._tasks
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "streamhub:",
        socket_timeout_s: float = 5.0,
        max_connections: int = 64,
        max_notify_bytes: int = 64 * 1024,
        min_replicas_acked: int = 0,
        replica_ack_timeout_s: float = 1.0,
        **options: Unpack[HubOptions],
    ) -> StreamHub:
        """A hub on Redis; settings as for `StreamHub()`.

        `url` is `redis://`, `rediss://`, `unix://`,
        `redis+sentinel://host:port[,host:port]/service[/db]` for a Sentinel-managed master,
        or `redis+cluster://host:port[,host:port]` (`rediss+cluster://`) for a Redis Cluster.
        The other arguments are those of `RedisBackend.from_url`.

        `socket_timeout_s` bounds each Redis command, so a stalled server turns into
        retries (which the seq-based appends make safe) instead of a hang.
        """
        from .backends._urls import CLUSTER_SCHEMES
        from .backends.redis import RedisBackend
        from .backends.redis_cluster import RedisClusterBackend

        kind = RedisClusterBackend if url.split("://")[0] in CLUSTER_SCHEMES else RedisBackend
        backend = kind.from_url(
            url,
            prefix=prefix,
            socket_timeout_s=socket_timeout_s,
            max_connections=max_connections,
            max_notify_bytes=max_notify_bytes,
            min_replicas_acked=min_replicas_acked,
            replica_ack_timeout_s=replica_ack_timeout_s,
        )
        return cls(backend=backend, **options)

    @property
    def send_guard(self) -> SendGuard:
        """Ends responses whose client stopped reading for `send_timeout_s`."""
        return self._send_guard

    @property
    def started(self) -> bool:
        """True between start and shutdown."""
        return self._tasks.task_group is not None

    def _require_supervisor(self) -> Supervisor:
        return self._tasks.require_supervisor()

    def _require_writer(self) -> Writer:
        return self._tasks.require_writer()

    async def __aenter__(self) -> StreamHub:
        if self.started:
            raise RuntimeError("this StreamHub is already started")
        await self.backend.open(self._fanout.dispatch, self._on_resync)
        await self._tasks.start(
            backend=self.backend,
            config=self.config,
            fanout=self._fanout,
            producers=self._producers,
            send_guard=self._send_guard,
            inboxes=self._inboxes,
            finishing=self._finishing,
            wind_up=self._launcher.wind_up,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.started:
            raise HubNotStartedError()
        try:
            with anyio.CancelScope(shield=True):
                await self._producers.shutdown()
                with anyio.move_on_after(self.config.shutdown_grace_s):
                    await self._finishing.drain()
            await self._tasks.stop()
        finally:
            self._tasks.clear()
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

    async def health(self) -> HubHealth:
        """Whether this hub can serve: started, storage reachable, every shared task running.

        Never raises; a readiness probe reports `ready`, the rest says what is wrong.
        """
        return await check_health(
            self.backend,
            self._tasks.supervisor,
            producers=len(self._producers),
            watched_keys=self._fanout.watched,
        )

    def _on_resync(self) -> None:
        """Notifications may have been lost: readers catch up, and every local producer
        checks storage at once (a cancel signal may have been among them)."""
        self._fanout.resync()
        self._inboxes.resync()
        for producer in self._producers:
            self._launcher.check_soon(producer)
        if (observer := self.config.observer) is not None:
            observer.notifications_resynced()

    def add_policy(self, name: str, policy: StreamPolicy) -> None:
        """Register the settings of one kind of stream under `name`, for
        `register(key, policy=name)`. Every instance must register the same policies:
        a finish hook left owed by an instance that died is run by another, found by
        this name. `@resumable_stream` registers its own, named by its key template."""
        self._finishing.policies.add(name, policy)

    async def register(self, key: str, *, policy: str | None = None) -> tuple[Producer, bool]:
        """Claim `key` for a new generation; returns `(producer, created)`.

        `policy` names settings registered with `add_policy` (retention, abandonment,
        finish hook); the hub's own apply otherwise. If this process already produces
        `key` and storage agrees that its generation still runs, that producer is
        returned with `created=False`. If the key's last generation still owes its
        finish hook, the hook runs (or is waited for) before the new generation starts.

        Raises:
            SessionBusyError: another instance is producing `key`.
            BackendUnavailableError: storage did not answer.
        """
        return await self._launcher.register(key, policy)

    async def dispatch(
        self,
        key: str,
        params: Mapping[str, Any] | Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
        *,
        send: Callable[[StreamJob], Awaitable[object]],
        start_timeout_s: float | None = None,
    ) -> StreamJob:
        """Claim `key` for a generation that a worker will produce, and hand the job to
        `send` (which puts it on a job queue); a worker then calls `run` with it.

        `params` is the job's parameters, or an async function returning them, called
        only once the key is claimed (so work that builds them is not done for nothing).

        Readers may subscribe at once. If no worker adopts the job within
        `start_timeout_s` (the hub's setting by default), they get `error` (`not_started`);
        if `send` raises, they get `error` (`not_sent`) and the exception propagates.

        Raises:
            SessionBusyError: `key` is running, or waiting for its worker.
            TypeError: `params` is not a JSON-serialisable mapping.
        """
        self._require_supervisor()
        generation = await claim_job(
            self.config, key, start_timeout_s, self._finishing.claim_pending
        )

        async def given() -> Mapping[str, Any] | None:
            return await params() if callable(params) else params

        return await send_job(self.backend, self.config, key, generation, given, send)

    async def run(self, job: StreamJob | Mapping[str, Any], stream: JobStream) -> JobOutcome:
        """Produce a dispatched job's generation in this process; returns once it ended.

        `stream` is an async generator (or a function that makes one), run as the
        decorator runs an endpoint: what it yields becomes events, `StreamError` an
        `error` with its message, and `current_producer()` works inside it. A job whose
        generation another worker adopted (a redelivery), or that ended, or that came
        after its start deadline, is refused: nothing is written and `stream` never runs.
        """
        return await self._launcher.run(job, stream)

    def spawn(self, producer: Producer, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` as the producer's task: owned by the hub, interrupted by cancel or stale.

        Whatever `run` raises ends this stream with an `error` event, and nothing else.
        """
        self._launcher.spawn(producer, run)

    def join(
        self,
        key: str,
        *,
        source: str,
        lease_s: float | None = None,
        accept_timeout_s: float | None = None,
    ) -> JoinedSource:
        """Join the running generation of `key`, wherever it was started, as one more
        source named `source`: `async with hub.join(key, source="worker-3") as joined:`.

        Its events go to the generation's owner, which writes them in the one order of
        the generation. `lease_s` (the hub's `lease_ttl_s` by default) is how long the
        owner waits for this process before it ends the source as `producer_lost`;
        `accept_timeout_s` (the same by default), how long the join waits to be accepted.
        Opening it raises `SessionNotFoundError`, `NotRunningError` (no generation runs)
        or `JoinRefusedError` (the name is taken in this generation).
        """
        self._require_supervisor()
        default = self.config.lease_ttl_s
        return JoinedSource(
            self,
            validate_key(key),
            source,
            lease_s=lease_s or default,
            accept_timeout_s=accept_timeout_s or default,
        )

    def get(self, key: str) -> Producer | None:
        """The producer of `key` running in this process, if any."""
        return self._producers.get(key)

    def subscribe(
        self, key: str, after: str | Cursor | None = None, *, max_queue: int | None = None
    ) -> Subscription:
        """Replay the events after `after` (a cursor or event id), then follow live."""
        return self._reads.subscribe(key, after, max_queue)

    async def status(self, key: str) -> StreamStatus | None:
        """The stream's state as storage holds it; None if there is no such stream."""
        return await self._reads.status(key)

    async def active(self, keys: Sequence[str]) -> dict[str, bool]:
        """Which of `keys` have a running producer, in one round trip."""
        return await self._reads.active(keys)

    async def cancel(
        self, key: str, *, generation: str | None = None, wait: float | None = None
    ) -> CancelResult | None:
        """Cancel `key` wherever its producer runs; None if there is no such stream.

        The `cancelled` event is stored at once; with `wait`, also wait up to that many
        seconds for the producer to confirm it stopped. With `generation`, only that
        generation is cancelled: a stop that races the next turn leaves the next turn be.
        The answer carries the generation's result as the cancel left it (its text so
        far, its usage), read once the producer stopped or the wait ran out.
        """
        return await self._commands.cancel(key, generation, wait)

    async def steer(self, key: str, message: object, *, source: str = "api") -> Steered:
        """Send `message` (any JSON value) to the running generation of `key`, wherever
        its producer runs; it reaches the generator once, through
        `current_producer().messages()` or `take_messages()`, and the stream gets a `steer`
        event. `source` says who sent it (`"client"` for the `steer` route).

        Raises:
            SessionNotFoundError: no stream under `key`.
            NotRunningError: its generation has ended; a message is never kept for the next.
            MessageTooLargeError: larger than `max_message_bytes` as JSON.
            InboxFullError: 1000 messages to the generation are not read yet.
            TypeError: `message` cannot be encoded as JSON.
        """
        return await self._commands.steer(key, message, source)

    async def remove(self, key: str) -> bool:
        """Forget `key`: cancel its running generation (its producer stops at once, and its
        writes are refused), then delete everything stored under it; True if it existed.
        A finish hook the generation still owed is not run."""
        return await self._commands.remove(key)

    async def result(self, key: str, *, generation: str | None = None) -> StreamResult | None:
        """The assembled answer of `key`'s current generation (or of `generation`, if it is
        still the current one): text, other events, status, metadata, times, last event
        id. While it runs, what exists so far. None if there is no such generation."""
        return await self._reads.result(key, generation)

    async def compact(self, key: str) -> bool:
        """Compact `key`'s finished generation now, whatever `compact_after_s` says;
        False if there is nothing to compact (no session, or still running)."""
        return await self._commands.compact(key)
