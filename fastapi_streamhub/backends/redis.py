"""Redis backend: a hash of state and a Stream of events per session, Lua for every
state change, one Pub/Sub connection per process for notifications.

Each script checks the generation, so a producer that lost its key cannot write.
Stream entry ids are `<seq>-0`: a retried append of a seq already stored is
skipped, never stored twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, Literal, cast

import anyio
import anyio.lowlevel
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import BusyLoadingError, NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._errors import BackendUnavailableError
from .._events import Status, StreamEvent
from .._keys import KeySpace
from . import _codec
from ._base import (
    Append,
    ChannelKind,
    Lease,
    NotificationHandler,
    ResyncHandler,
    SessionState,
    WriteOutcome,
)
from ._pubsub import PubSubListener
from ._urls import client_from_url

logger = logging.getLogger("fastapi_streamhub")

_SCRIPTS = ("claim", "append", "refresh", "finish", "release", "read", "state")
_MAX_CACHED_PARTS = 4096


async def _reply(connection: AbstractConnection) -> Any:
    try:
        return await connection.read_response(timeout=math.inf)
    except ResponseError as exc:
        return exc


def _outcome(key: str, reply: Any) -> WriteOutcome:
    """A refused command ends only its own stream; the rest of the round stands."""
    if isinstance(reply, Exception) or reply.startswith("error:"):
        logger.error("stream %r: Redis refused the command: %s", key, reply)
        return "error"
    return cast("WriteOutcome", reply)


def _outcomes(keys: list[str], reply: Any) -> list[WriteOutcome]:
    """The outcome per key of a script call that took many: the call's own reply
    holds one per key, or is the error that refused them all."""
    if isinstance(reply, Exception):
        return [_outcome(key, reply) for key in keys]
    return [_outcome(key, outcome) for key, outcome in zip(keys, reply, strict=True)]


def _command(*parts: str, length: int | None = None) -> bytes:
    """A command in RESP; `length` counts parts still to be appended by the caller."""
    head = b"*%d\r\n" % (length if length is not None else len(parts))
    return head + b"".join(_bulk(part) for part in parts)


def _bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _load_scripts(client: Redis) -> dict[str, AsyncScript]:
    folder = resources.files(__package__).joinpath("lua")
    return {
        name: client.register_script(folder.joinpath(f"{name}.lua").read_text("utf-8"))
        for name in _SCRIPTS
    }


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """Redis being down, paused or failing over is one condition to the hub: retry later."""
    try:
        yield
    except (
        RedisConnectionError,
        RedisTimeoutError,
        BusyLoadingError,
        ReadOnlyError,
        OSError,
    ) as exc:
        raise BackendUnavailableError(f"Redis is unavailable: {exc}") from exc


def _session_state(key: str, row: list[Any]) -> SessionState:
    status, generation, owner, lease_left, last_seq, metadata = row[-6:]
    return SessionState(
        key=key,
        status=cast("Status", status),
        generation=generation,
        owner=owner,
        last_seq=int(last_seq),
        metadata=metadata,
        lease_expired=int(lease_left) <= 0,
    )


class _Gathering:
    """Calls of one script waiting to go out in the same round trip."""

    def __init__(self) -> None:
        self._commands: list[bytes] = []
        self._replies: list[Any] = []
        self._error: Exception | None = None
        self.sent = anyio.Event()

    def add(self, command: bytes) -> int:
        self._commands.append(command)
        return len(self._commands) - 1

    async def send(
        self, round_trip: Callable[[str, bytes, int], Awaitable[list[Any]]], script: str
    ) -> None:
        try:
            self._replies = await round_trip(script, b"".join(self._commands), len(self._commands))
        except Exception as exc:
            self._error = exc
        finally:
            self.sent.set()

    def reply(self, index: int) -> Any:
        """The call's reply; raises if Redis refused it or the round failed."""
        if isinstance(self._error, BackendUnavailableError):
            raise BackendUnavailableError(str(self._error)) from self._error
        if self._error is not None:
            raise RuntimeError("the round trip of this call failed") from self._error
        reply = self._replies[index]
        if isinstance(reply, Exception):
            raise reply
        return reply


class RedisBackend:
    """Stores sessions in Redis through a ready `redis.asyncio.Redis` client.

    The client must be created with `decode_responses=True`. Pass one built for
    Sentinel (`Sentinel(...).master_for(...)`) the same way.
    """

    def __init__(
        self, *, client: Redis, prefix: str = "streamhub:", socket_timeout_s: float = 5.0
    ) -> None:
        self._client = client
        self._socket_timeout_s = socket_timeout_s
        self._write_lock = anyio.Lock()
        self._write_connection: AbstractConnection | None = None
        self._helpers: list[Redis] = []
        self._keys = KeySpace(prefix)
        self._scripts = _load_scripts(client)
        self._append_parts: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._gathering: dict[str, _Gathering] = {}
        self._channels: dict[str, tuple[str, ChannelKind]] = {}
        self._listener: PubSubListener | None = None
        self._notify: NotificationHandler | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "streamhub:",
        socket_timeout_s: float = 5.0,
        max_connections: int = 64,
    ) -> RedisBackend:
        """A backend on `url` (`redis://`, `rediss://`, `unix://`, `redis+sentinel://`).

        Hundreds of streams share `max_connections`: a burst queues briefly rather
        than opening a connection per stream or erroring with "Too many connections".
        """
        client, helpers = client_from_url(
            url, socket_timeout_s=socket_timeout_s, max_connections=max_connections
        )
        backend = cls(client=client, prefix=prefix, socket_timeout_s=socket_timeout_s)
        backend._helpers = helpers
        return backend

    async def open(self, on_notification: NotificationHandler, on_resync: ResyncHandler) -> None:
        self._notify = on_notification
        self._listener = PubSubListener(self._client, self._on_message, on_resync)
        self._listener.start()
        await self._load_scripts()

    async def _load_scripts(self) -> None:
        """Load every script up front, in one round trip.

        Otherwise the first burst of starts meets `NOSCRIPT` on every call and sends
        the whole burst twice. Redis being away is no reason not to start: a script
        missing later (Redis restarted) is loaded on first use.
        """
        sources = [cast("str", script.script) for script in self._scripts.values()]
        packed = b"".join(_command("SCRIPT", "LOAD", source) for source in sources)
        try:
            with _unavailable_as_error():
                await self._pipeline(packed, len(self._scripts))
        except BackendUnavailableError as exc:
            logger.warning("could not load the scripts at startup (loaded on first use): %s", exc)

    async def aclose(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.aclose()
        if self._write_connection is not None:
            await self._write_connection.disconnect()
            self._write_connection = None
        await self._client.aclose()
        for helper in self._helpers:
            await helper.aclose()

    def _channel(self, key: str, kind: ChannelKind) -> str:
        if kind == "events":
            return self._keys.event_channel(key)
        return self._keys.control_channel(key)

    async def watch(self, key: str, kind: ChannelKind) -> None:
        channel = self._channel(key, kind)
        self._channels[channel] = (key, kind)
        if self._listener is None:
            raise RuntimeError("RedisBackend.open() must be called before watch()")
        with _unavailable_as_error():
            await self._listener.subscribe(channel)

    async def unwatch(self, key: str, kind: ChannelKind) -> None:
        channel = self._channel(key, kind)
        self._channels.pop(channel, None)
        if self._listener is not None:
            await self._listener.unsubscribe(channel)

    def _on_message(self, channel: str, payload: str) -> None:
        target = self._channels.get(channel)
        note = _codec.decode(payload)
        if target is not None and note is not None and self._notify is not None:
            self._notify(target[0], note)

    async def _run(self, script: str, keys: list[str], args: Sequence[str | int]) -> Any:
        with _unavailable_as_error():
            return await self._scripts[script](keys=keys, args=args)

    async def claim(
        self, key: str, *, generation: str, owner: str, lease_ms: int, retention_ms: int
    ) -> tuple[bool, SessionState]:
        keys = (self._keys.state(key), self._keys.events(key))
        args = (generation, owner, str(lease_ms), str(retention_ms))
        row = await self._call_together("claim", keys, args)
        return bool(row[0]), _session_state(key, row)

    async def _call_together(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Call `script` in one round trip with every call of it made meanwhile.

        Starts and ends of streams come in bursts (a page of chats opening at
        once): each call packed into one pipelined round on the writer's connection
        costs a tenth of a redis-py call, and the burst opens no pool connections.
        The first caller sends the round, shielded, so the others' calls go out
        even if it is cancelled.
        """
        command = _command("EVALSHA", self._scripts[script].sha, str(len(keys)), *keys, *args)
        batch = self._gathering.get(script)
        if batch is None:
            batch = self._gathering[script] = _Gathering()
            index = batch.add(command)
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
                del self._gathering[script]
                await batch.send(self._round, script)
        else:
            index = batch.add(command)
            await batch.sent.wait()
        return batch.reply(index)

    async def append_many(
        self, writes: Sequence[Append], *, retention_ms: int
    ) -> list[WriteOutcome]:
        """All writes in one script call: one command and one reply, however many
        streams wrote. The script runs each write on its own, so a write Redis fails
        ends only its own stream."""
        if not writes:
            return []
        keys: list[bytes] = []
        args = [_bulk(str(retention_ms))]
        for write in writes:
            key_part, generation_part = self._parts_of(write)
            keys.append(key_part)
            payload = _codec.encode_events(write.generation, write.events) if write.events else ""
            args.append(generation_part + _bulk(write.metadata or "") + _bulk(payload))
        head = _command(
            "EVALSHA", self._scripts["append"].sha, str(3 * len(writes)), length=4 + 6 * len(writes)
        )
        (reply,) = await self._round("append", head + b"".join(keys) + b"".join(args), 1)
        return _outcomes([write.key for write in writes], reply)

    async def refresh_many(
        self, leases: Sequence[Lease], *, lease_ms: int, retention_ms: int
    ) -> list[WriteOutcome]:
        """Every lease of the process in one script call, on the writer's connection:
        a round of renewals costs Redis one call, not one per stream, so the writes
        queued behind it wait less."""
        if not leases:
            return []
        keys: list[str] = []
        for lease in leases:
            keys += (self._keys.state(lease.key), self._keys.events(lease.key))
        args = [str(lease_ms), str(retention_ms), *(lease.generation for lease in leases)]
        command = _command("EVALSHA", self._scripts["refresh"].sha, str(len(keys)), *keys, *args)
        (reply,) = await self._round("refresh", command, 1)
        return _outcomes([lease.key for lease in leases], reply)

    async def _round(self, script: str, packed: bytes, count: int) -> list[Any]:
        """Run pre-packed calls of `script`, loading it first if Redis lost it (a restart)."""
        with _unavailable_as_error():
            replies = await self._pipeline(packed, count)
            if any(isinstance(r, NoScriptError) for r in replies):
                await self._client.script_load(self._scripts[script].script)
                replies = await self._pipeline(packed, count)
        return replies

    def _parts_of(self, write: Append) -> tuple[bytes, bytes]:
        """A write's keys and generation in RESP, packed once per stream, not per write."""
        fixed = (write.key, write.generation)
        parts = self._append_parts.get(fixed)
        if parts is None:
            if len(self._append_parts) >= _MAX_CACHED_PARTS:
                self._append_parts.clear()
            key = write.key
            keys = (self._keys.state(key), self._keys.events(key), self._keys.event_channel(key))
            parts = self._append_parts[fixed] = (
                b"".join(_bulk(k) for k in keys),
                _bulk(write.generation),
            )
        return parts

    async def _pipeline(self, packed: bytes, count: int) -> list[Any]:
        """Send pre-packed commands on the writer's own connection and read every reply.

        The hot path of every stream: packing here, once per stream for the fixed
        part, costs a fraction of packing each argument of each command anew; one
        bound for the whole round replaces a timeout per reply. `connect()` first: a
        Sentinel-managed connection finds its master there, not in `send_packed_command`.
        """
        async with self._write_lock:
            if self._write_connection is None:
                pool = self._client.connection_pool
                self._write_connection = pool.make_connection()  # type: ignore[no-untyped-call]
            connection = self._write_connection
            try:
                with anyio.fail_after(self._socket_timeout_s):
                    if not connection.is_connected:
                        await connection.connect()
                    await connection.send_packed_command(packed, check_health=False)
                    return [await _reply(connection) for _ in range(count)]
            except BaseException:
                await connection.disconnect()
                raise

    async def finish(
        self,
        key: str,
        *,
        generation: str | None,
        event: Literal["cancelled", "error"],
        data: str,
        retention_ms: int,
        only_if_lapsed: bool,
    ) -> tuple[bool, SessionState | None]:
        keys = [
            self._keys.state(key),
            self._keys.events(key),
            self._keys.event_channel(key),
            self._keys.control_channel(key),
        ]
        args: list[str | int] = [generation or "", event, data, retention_ms, int(only_if_lapsed)]
        row = await self._run("finish", keys, args)
        if row is None:
            return False, None
        return bool(row[0]), _session_state(key, row)

    async def release(self, key: str, *, generation: str) -> None:
        keys = (self._keys.state(key), self._keys.control_channel(key))
        await self._call_together("release", keys, (generation,))

    async def read(
        self, key: str, *, generation: str, after_seq: int, limit: int
    ) -> list[StreamEvent] | None:
        keys = [self._keys.state(key), self._keys.events(key)]
        rows = await self._run("read", keys, [generation, after_seq, limit])
        if rows is None:
            return None
        if not rows:
            return []
        parts = rows.split("\n")
        return [
            StreamEvent(generation, int(parts[i]), parts[i + 1] or None, parts[i + 2])
            for i in range(0, len(parts), 3)
        ]

    async def states(self, keys: Sequence[str]) -> list[SessionState | None]:
        with _unavailable_as_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    await self._scripts["state"](keys=[self._keys.state(key)], client=pipe)
                rows = await pipe.execute()
        return [
            None if row is None else _session_state(k, row)
            for k, row in zip(keys, rows, strict=False)
        ]

    async def remove(self, key: str) -> bool:
        with _unavailable_as_error():
            removed = await self._client.delete(self._keys.state(key), self._keys.events(key))
        return bool(removed)
