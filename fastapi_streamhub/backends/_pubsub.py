"""One Pub/Sub connection for every subscription of a process.

Redis work per event does not grow with the number of subscribers: each process
holds one channel subscription per watched key and fans out locally. A
subscription is reported ready only once Redis has confirmed it, so nothing
published after that can be missed. (Un)subscriptions requested together (two
hundred streams starting at once) go out as one command. After a broken connection redis-py
resubscribes; `on_resync` then tells the hub that notifications may have been
lost in between, and readers catch up from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("fastapi_streamhub")

_SUBSCRIBE_TIMEOUT_S = 10.0
_POLL_S = 1.0
_MAX_BACKOFF_S = 1.0


class PubSubListener:
    def __init__(
        self,
        client: Redis,
        on_message: Callable[[str, str], None],
        on_resync: Callable[[], None],
    ) -> None:
        self._pubsub = client.pubsub()
        self._on_message = on_message
        self._on_resync = on_resync
        self._waiting: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._requests: dict[str, bool] = {}
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="streamhub-pubsub")

    async def aclose(self) -> None:
        for task in (self._task, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._sender = None
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis has confirmed the subscription."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[channel].append(confirmed)
        self._request(channel, subscribe=True)
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), _SUBSCRIBE_TIMEOUT_S)
        finally:
            waiting = self._waiting.get(channel)
            if waiting and confirmed in waiting:
                waiting.remove(confirmed)

    async def unsubscribe(self, channel: str) -> None:
        self._request(channel, subscribe=False)

    def _request(self, channel: str, *, subscribe: bool) -> None:
        """Queue a (un)subscription; those queued together go out as one command."""
        self._requests[channel] = subscribe
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="streamhub-subscribe")

    async def _send(self) -> None:
        try:
            while self._requests:
                requests, self._requests = self._requests, {}
                wanted = [channel for channel, subscribe in requests.items() if subscribe]
                unwanted = [channel for channel, subscribe in requests.items() if not subscribe]
                try:
                    if unwanted:
                        await self._pubsub.unsubscribe(*unwanted)
                    if wanted:
                        await self._pubsub.subscribe(*wanted)
                        self._subscribed.set()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    self._fail(wanted, exc)
        finally:
            self._sender = None

    def _fail(self, channels: list[str], error: Exception) -> None:
        for channel in channels:
            for confirmed in self._waiting.pop(channel, []):
                if not confirmed.done():
                    confirmed.set_exception(error)

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(timeout=_POLL_S)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
                logger.warning("Pub/Sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                continue
            if backoff:
                backoff = 0.0
                self._on_resync()
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._on_message(channel, message["data"])
        elif kind == "subscribe":
            for confirmed in self._waiting.pop(channel, []):
                if not confirmed.done():
                    confirmed.set_result(None)
