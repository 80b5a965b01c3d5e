"""Redis backend: a hash of state and a Stream of events per session, Lua for every
state change, one Pub/Sub connection per process for notifications.

Each script checks the generation, so a producer that lost its key cannot write.
Stream entry ids are `<seq>-0`: a retried append of a seq already stored is
skipped, never stored twice. Everything goes through redis-py's public client
(commands, pipelines, `PubSub`), so its reconnection, health checks and, on a
cluster, its routing apply; failures are sorted by `_redis_errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from .._errors import BackendUnavailableError
from .._events import StreamEvent
from .._keys import KeySpace
from . import _codec
from ._base import (
    AdoptOutcome,
    Append,
    AppendOutcome,
    ChannelKind,
    Gap,
    Lease,
    NotificationHandler,
    Page,
    ResyncHandler,
    SessionState,
    WriteOutcome,
)
from ._gathering import Gathering
from ._pubsub import Listener, PubSubListener
from ._redis_ends import RedisEnds
from ._redis_errors import unavailable_as_error
from ._redis_inbox import RedisInbox
from ._redis_listing import RedisListing
from ._redis_replies import group_outcomes, outcome_of, session_state
from ._scripts import Call, Client, Scripts
from ._urls import client_from_url

logger = logging.getLogger("fastapi_streamhub")


class RedisBackend(RedisEnds, RedisInbox, RedisListing):
    """Stores sessions in Redis through a ready `redis.asyncio.Redis` client.

    The client must be created with `decode_responses=True`. Pass one built for
    Sentinel (`Sentinel(...).master_for(...)`) the same way.

    Args:
        client: the client every command goes through.
        prefix: the start of every key and channel name.
        max_notify_bytes: a write whose events take more is announced without them
            (readers read the stream), which keeps every Pub/Sub message well below
            Redis's output buffer limit for Pub/Sub clients (32 MiB by default).
        min_replicas_acked: with more than 0, a write reaches readers only once that
            many replicas acknowledged it (`WAIT`), so a failover cannot lose an event
            a client saw. It costs a round trip to the replicas per writer round.
        replica_ack_timeout_s: how long one `WAIT` may take; a round not acknowledged
            in time is retried like any write that storage refused for now.
        subscribe_timeout_s: how long a subscription may take to be confirmed.
    """

    def __init__(
        self,
        *,
        client: Client,
        prefix: str = "streamhub:",
        max_notify_bytes: int = 64 * 1024,
        min_replicas_acked: int = 0,
        replica_ack_timeout_s: float = 1.0,
        subscribe_timeout_s: float = 5.0,
    ) -> None:
        if max_notify_bytes <= 0 or min_replicas_acked < 0 or replica_ack_timeout_s <= 0:
            raise ValueError("max_notify_bytes and replica_ack_timeout_s must be positive")
        self._client: Client = client
        self._helpers: list[Redis] = []
        self._keys = KeySpace(prefix)
        self._scripts = Scripts(sharded=self._sharded)
        self._max_notify_bytes = max_notify_bytes
        self._min_replicas_acked = min_replicas_acked
        self._replica_ack_timeout_ms = int(replica_ack_timeout_s * 1000)
        self._subscribe_timeout_s = subscribe_timeout_s
        self._claims = Gathering(self._call_many)
        self._releases = Gathering(self._call_many)
        self._channels: dict[str, tuple[str, ChannelKind]] = {}
        self._listener: Listener | None = None
        self._notify: NotificationHandler | None = None

    _sharded = False
    """Publish with `SPUBLISH` and subscribe per shard (a cluster)."""

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
    ) -> RedisBackend:
        """A backend on `url` (`redis://`, `rediss://`, `unix://`, `redis+sentinel://`).

        Hundreds of streams share `max_connections`: a burst queues briefly rather
        than opening a connection per stream or erroring with "Too many connections".
        """
        client, helpers = client_from_url(
            url, socket_timeout_s=socket_timeout_s, max_connections=max_connections
        )
        backend = cls(
            client=client,
            prefix=prefix,
            max_notify_bytes=max_notify_bytes,
            min_replicas_acked=min_replicas_acked,
            replica_ack_timeout_s=replica_ack_timeout_s,
            subscribe_timeout_s=socket_timeout_s,
        )
        backend._helpers = helpers
        return backend

    def _make_listener(self, on_resync: ResyncHandler) -> Listener:
        if not isinstance(self._client, Redis):
            raise TypeError("RedisBackend takes a redis.asyncio.Redis; use RedisClusterBackend")
        return PubSubListener(
            self._client, self._on_message, on_resync, confirm_timeout_s=self._subscribe_timeout_s
        )

    async def open(self, on_notification: NotificationHandler, on_resync: ResyncHandler) -> None:
        self._notify = on_notification
        self._listener = self._make_listener(on_resync)
        try:
            with unavailable_as_error():
                await self._scripts.load(self._client)
        except BackendUnavailableError as exc:
            logger.warning("could not load the scripts at startup (loaded on first use): %s", exc)

    async def run(self) -> None:
        await self._require_listener().run()

    async def ping(self) -> None:
        with unavailable_as_error():
            await self._client.ping()

    def _require_listener(self) -> Listener:
        if self._listener is None:
            raise RuntimeError("RedisBackend.open() must be called first")
        return self._listener

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()
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
        await self._require_listener().subscribe(channel)

    async def unwatch(self, key: str, kind: ChannelKind) -> None:
        channel = self._channel(key, kind)
        self._channels.pop(channel, None)
        if self._listener is not None:
            await self._listener.unsubscribe(channel)

    def _on_message(self, channel: str, payload: str) -> None:
        target = self._channels.get(channel)
        if target is not None and self._notify is not None:
            self._notify(target[0], _codec.decode(payload))

    async def _call(self, call: Call) -> Any:
        with unavailable_as_error():
            return await self._scripts.call(self._client, call)

    async def _call_many(self, calls: Sequence[Call]) -> list[Any]:
        with unavailable_as_error():
            return await self._scripts.call_many(self._client, calls)

    async def _call_each(self, calls: Sequence[Call]) -> list[Any]:
        """One call as a plain command (its failure raises); several in one pipeline,
        each reply or failure in place."""
        if len(calls) == 1:
            return [await self._call(calls[0])]
        return await self._call_many(calls)

    def _groups(self, keys: Sequence[str]) -> list[list[int]]:
        """Indexes of `keys` that one script call may take together: all of them here;
        on a cluster, those of one hash slot."""
        return [list(range(len(keys)))]

    async def claim(
        self,
        key: str,
        *,
        generation: str,
        owner: str,
        lease_ms: int,
        retention_ms: int,
        pending: bool = False,
        hook: str = "",
    ) -> tuple[bool, SessionState]:
        keys = (self._keys.state(key), self._keys.events(key))
        args = (generation, owner, lease_ms, retention_ms, int(pending), hook)
        row = await self._claims.call(Call("claim", keys, args))
        state = session_state(key, row)
        created = bool(row[0]) or (state.generation == generation and state.owner == owner)
        return created, state

    async def adopt(
        self, key: str, *, generation: str, owner: str, token: str, lease_ms: int, retention_ms: int
    ) -> AdoptOutcome:
        args = (generation, owner, token, lease_ms, retention_ms)
        reply = await self._call(Call("adopt", [self._keys.state(key)], args))
        return cast("AdoptOutcome", str(reply))

    async def append_many(
        self, writes: Sequence[Append], *, retention_ms: int
    ) -> list[AppendOutcome]:
        """All writes in one script call: one command and one reply, however many
        streams wrote. The script runs each write on its own, so a write Redis fails
        ends only its own stream."""
        if not writes:
            return []
        groups = [[writes[i] for i in group] for group in self._groups([w.key for w in writes])]
        calls = [self._append_call(group, retention_ms) for group in groups]
        if self._min_replicas_acked:
            replies = await self._append_acknowledged(calls)
        else:
            replies = await self._call_each(calls)
        outcomes: dict[int, AppendOutcome] = {}
        for group, reply in zip(groups, replies, strict=True):
            for write, outcome in zip(group, group_outcomes(group, reply), strict=True):
                outcomes[id(write)] = outcome
        return [outcomes[id(write)] for write in writes]

    def _append_call(self, writes: Sequence[Append], retention_ms: int) -> Call:
        keys: list[str] = []
        args: list[str | int] = [retention_ms, self._max_notify_bytes]
        for write in writes:
            key = write.key
            keys += (self._keys.state(key), self._keys.events(key), self._keys.event_channel(key))
            payload = _codec.encode_events(write.generation, write.events) if write.events else ""
            args += (write.generation, write.metadata or "", payload)
        return Call("append", keys, args)

    async def _append_acknowledged(self, calls: Sequence[Call]) -> list[Any]:
        """The round's calls and a `WAIT` per node in one pipeline (WAIT counts the writes
        of its own connection, which a pipeline shares per node). A call whose node's
        replicas did not acknowledge in time is refused for now and sent again (the seqs
        already stored are skipped), and waited for again."""
        targets = self._wait_targets(calls)
        with unavailable_as_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for call in calls:
                    self._scripts.queue(pipe, call)
                for target in targets:
                    options = {} if target is None else {"target_nodes": target}
                    pipe.execute_command(
                        "WAIT", self._min_replicas_acked, self._replica_ack_timeout_ms, **options
                    )
                replies = list(await pipe.execute(raise_on_error=False))
        acks = dict(zip(targets, replies[len(calls) :], strict=True))
        answers = replies[: len(calls)]
        if any(isinstance(a, NoScriptError) for a in answers):
            await self._scripts.load(self._client, ["append"])
        for index, call in enumerate(calls):
            acked = acks[self._wait_target(call)]
            if isinstance(acked, Exception) or int(acked) < self._min_replicas_acked:
                answers[index] = BackendUnavailableError(
                    f"{acked!r} of {self._min_replicas_acked} replicas acknowledged in time"
                )
        return answers

    def _wait_targets(self, calls: Sequence[Call]) -> list[Any]:
        return list(dict.fromkeys(self._wait_target(call) for call in calls))

    def _wait_target(self, call: Call) -> Any:
        """Where a call's `WAIT` goes: the connection of the call (here, the only one)."""
        return None

    async def refresh_many(
        self, leases: Sequence[Lease], *, lease_ms: int, retention_ms: int
    ) -> list[WriteOutcome]:
        """Every lease of the process in one script call: a round of renewals costs
        Redis one call, not one per stream."""
        if not leases:
            return []
        groups = [[leases[i] for i in g] for g in self._groups([lease.key for lease in leases])]
        calls = [self._refresh_call(group, lease_ms, retention_ms) for group in groups]
        outcomes: dict[int, WriteOutcome] = {}
        for group, reply in zip(groups, await self._call_each(calls), strict=True):
            if isinstance(reply, Exception):
                raise BackendUnavailableError(f"lease renewals failed: {reply}") from reply
            for lease, answer in zip(group, reply, strict=True):
                outcome = outcome_of(lease.key, lease.generation, answer)
                outcomes[id(lease)] = "failed" if isinstance(outcome, Gap) else outcome
        return [outcomes[id(lease)] for lease in leases]

    def _refresh_call(self, leases: Sequence[Lease], lease_ms: int, retention_ms: int) -> Call:
        keys: list[str] = []
        for lease in leases:
            keys += (self._keys.state(lease.key), self._keys.events(lease.key))
        args: list[str | int] = [lease_ms, retention_ms]
        args += (lease.generation for lease in leases)
        return Call("refresh", keys, args)

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
        row = await self._call(Call("finish", keys, args))
        if row is None:
            return False, None
        return bool(row[0]), session_state(key, row)

    async def release(self, key: str, *, generation: str) -> None:
        keys = (self._keys.state(key), self._keys.control_channel(key))
        await self._releases.call(Call("release", keys, (generation,)))

    async def read(
        self,
        key: str,
        *,
        generation: str,
        after_seq: int,
        limit: int,
        max_bytes: int | None = None,
    ) -> Page | None:
        keys = [self._keys.state(key), self._keys.events(key)]
        args: list[str | int] = [generation, after_seq, limit, max_bytes or 0]
        reply = await self._call(Call("read", keys, args))
        if reply is None:
            return None
        parts = reply.split("\n")
        events = [
            StreamEvent(generation, int(parts[i]), parts[i + 1] or None, parts[i + 2])
            for i in range(2, len(parts), 3)
        ]
        return Page(events, int(parts[1]), parts[0] != "active")

    async def states(self, keys: Sequence[str]) -> list[SessionState | None]:
        if not keys:
            return []
        groups = self._groups(keys)
        calls = [Call("states", [self._keys.state(keys[i]) for i in group], []) for group in groups]
        found: list[SessionState | None] = [None] * len(keys)
        for group, rows in zip(groups, await self._call_each(calls), strict=True):
            if isinstance(rows, Exception):
                raise BackendUnavailableError(f"reading states failed: {rows}") from rows
            for index, row in zip(group, rows, strict=True):
                found[index] = session_state(keys[index], row, pending=row[0] == 1) if row else None
        return found

    async def remove(self, key: str) -> bool:
        with unavailable_as_error():
            removed = await self._client.delete(
                self._keys.state(key),
                self._keys.events(key),
                self._keys.packing(key),
                self._keys.inbox(key),
            )
        return bool(removed)
