"""One Pub/Sub connection for every subscription of a process.

Redis work per event does not grow with the number of subscribers: each process
holds one channel subscription per watched key and fans out locally.

The listener keeps the set of channels the hub wants and makes the connection
match it: a subscription is reported ready only once Redis has confirmed it, a
confirmation for a channel nobody wants any more (its reader left while the
SUBSCRIBE was in flight) is answered with an UNSUBSCRIBE, and (un)subscriptions
requested together go out as one command. `run` is supervised by the hub: after
any failure it starts over on a new connection, subscribes to everything wanted,
and once Redis has confirmed all of it calls `on_resync`, since notifications
may have been lost in between. A reconnection inside redis-py (its retry policy)
is seen through the connection's connect callback and handled the same way. No
message can stop it: one that fails to decode or to dispatch is logged and skipped.

With `sharded=True` it holds sharded subscriptions (`SSUBSCRIBE`, one command per
hash slot) on one node of a cluster; a `sunsubscribe` it did not ask for means the
channel's slot left that node, and `on_moved` is told so that the channel can follow
its slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot

from .._errors import BackendUnavailableError
from ._redis_errors import is_transient

logger = logging.getLogger("fastapi_streamhub")

_POLL_S = 1.0
_MAX_BACKOFF_S = 2.0


class Listener(Protocol):
    """What the Redis backends need from their Pub/Sub side."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


def _by_slot(channels: Collection[str]) -> list[list[str]]:
    """A sharded (un)subscribe may name channels of one hash slot only: Redis refuses
    one that spans slots with CROSSSLOT, even when one node holds them all."""
    groups: dict[int, list[str]] = {}
    for channel in channels:
        groups.setdefault(key_slot(channel.encode()), []).append(channel)
    return list(groups.values())


class PubSubListener:
    def __init__(
        self,
        client: Redis,
        on_message: Callable[[str, str], None],
        on_resync: Callable[[], None],
        *,
        confirm_timeout_s: float,
        sharded: bool = False,
        on_moved: Callable[[str], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._sharded = sharded
        self._on_moved = on_moved
        self._on_lost = on_lost
        self._on_message = on_message
        self._on_resync = on_resync
        self._confirm_timeout_s = confirm_timeout_s
        self._pubsub: PubSub | None = None
        self._wanted: set[str] = set()
        self._confirmed: set[str] = set()
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self._outbox: dict[str, bool] = {}
        self._sending = False
        self._resync_due = False
        self._listened = False

    @property
    def connected(self) -> bool:
        return self._pubsub is not None

    @property
    def wanted(self) -> set[str]:
        return self._wanted

    @property
    def sending(self) -> bool:
        """(Un)subscribes are going out: closing the connection now would break them."""
        return self._sending

    async def aclose(self) -> None:
        """Nothing to release: the connection is closed when `run` ends."""

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis has confirmed the subscription.

        Raises:
            BackendUnavailableError: no confirmation within the bound.
        """
        self._wanted.add(channel)
        if channel in self._confirmed:
            return
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append(confirmed)
        try:
            await self._request(channel, subscribe=True)
            with anyio.fail_after(self._confirm_timeout_s):
                await asyncio.shield(confirmed)
        except TimeoutError:
            raise BackendUnavailableError(
                f"Redis did not confirm the subscription of {channel!r}"
            ) from None
        finally:
            waiting = self._waiting.get(channel, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            if not waiting:
                self._waiting.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._confirmed.discard(channel)
        self._maybe_resync()
        await self._request(channel, subscribe=False)

    async def _request(self, channel: str, *, subscribe: bool) -> None:
        self._outbox[channel] = subscribe
        await self._flush()

    async def _flush(self) -> None:
        """Whoever finds no send under way sends every queued change.

        Shielded, so the changes of other callers go out even if this one is cancelled.
        A send that fails is left to `run`, which starts over from what is wanted.
        """
        if self._sending or self._pubsub is None or not self._outbox:
            return
        self._sending = True
        try:
            with anyio.CancelScope(shield=True):
                await self._send(self._pubsub)
        finally:
            self._sending = False

    async def _send(self, pubsub: PubSub) -> None:
        while self._outbox and pubsub is self._pubsub:
            changes, self._outbox = self._outbox, {}
            wanted = [c for c, subscribe in changes.items() if subscribe and c in self._wanted]
            unwanted = [c for c, subscribe in changes.items() if not subscribe]
            try:
                if unwanted:
                    await self._unsubscribe(pubsub, unwanted)
                if wanted:
                    await self._subscribe(pubsub, wanted)
            except Exception as exc:
                if pubsub is not self._pubsub:
                    return  # `run` closed this connection meanwhile: stopped, or starts over
                if not is_transient(exc):
                    raise
                logger.warning("Pub/Sub (un)subscribe not sent (%s); the listener resyncs", exc)
                return

    async def _subscribe(self, pubsub: PubSub, channels: Collection[str]) -> None:
        if self._sharded:
            for group in _by_slot(channels):
                await pubsub.ssubscribe(*group)
        else:
            await pubsub.subscribe(*channels)

    async def _unsubscribe(self, pubsub: PubSub, channels: Collection[str]) -> None:
        if self._sharded:
            for group in _by_slot(channels):
                await pubsub.sunsubscribe(*group)
        else:
            await pubsub.unsubscribe(*channels)

    async def run(self) -> None:
        """Listen until cancelled; a connection lost is replaced, anything else raises."""
        backoff = 0.0
        while True:
            try:
                await self._listen()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                logger.warning("Pub/Sub connection lost (%s); reconnecting", exc)
                if self._on_lost is not None:
                    self._on_lost()
                await anyio.sleep(backoff)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]
            connection = pubsub.connection
            if connection is not None:
                connection.register_connect_callback(self._on_connect)
            self._pubsub = pubsub
            self._outbox.clear()
            self._resync_due, self._listened = self._listened, True
            if self._wanted:
                await self._subscribe(pubsub, self._wanted)
            self._maybe_resync()
            while True:
                message = await pubsub.get_message(timeout=_POLL_S)
                if message is not None:
                    self._handle(message)
                    await self._flush()
        finally:
            self._pubsub = None
            self._confirmed.clear()
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _on_connect(self, connection: AbstractConnection) -> None:
        """A reconnection inside redis-py (registered after the first connection): it
        subscribes again by itself, but notifications may have been lost meanwhile."""
        self._confirmed.clear()
        self._resync_due = True

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            kind, channel = message["type"], message["channel"]
            if kind in ("message", "smessage"):
                self._on_message(channel, message["data"])
            elif kind in ("subscribe", "ssubscribe"):
                self._confirm(channel)
            elif kind == "sunsubscribe" and channel in self._wanted:
                self._moved(channel)
        except Exception:
            logger.exception("a Pub/Sub message could not be handled; skipped: %r", message)

    def _confirm(self, channel: str) -> None:
        if channel not in self._wanted:
            self._outbox[channel] = False
            return
        self._confirmed.add(channel)
        for confirmed in self._waiting.pop(channel, []):
            if not confirmed.done():
                confirmed.set_result(None)
        self._maybe_resync()

    def _moved(self, channel: str) -> None:
        """Redis dropped a sharded subscription it was not asked to: the slot moved."""
        self._confirmed.discard(channel)
        if self._on_moved is not None:
            self._on_moved(channel)

    def _maybe_resync(self) -> None:
        """After a reconnection, once everything wanted is confirmed again: from then on
        nothing is missed, so readers catch up from storage once, now."""
        if self._resync_due and self._wanted <= self._confirmed:
            self._resync_due = False
            self._on_resync()
