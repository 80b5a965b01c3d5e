"""The owner reads its inbox: each message once per generation, in order, on every
backend, whether or not the signal that announced it arrived."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import anyio
import pytest

from fastapi_streamhub import StreamHub
from fastapi_streamhub._inbox import InboxMessage, post
from fastapi_streamhub._keys import KeySpace
from fastapi_streamhub._producer import Producer
from fastapi_streamhub.backends import Posted
from fastapi_streamhub.backends._scripts import Scripts
from fastapi_streamhub.backends.redis import RedisBackend
from tests.support import redis_faults as faults
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


class Received:
    def __init__(self) -> None:
        self.messages: list[InboxMessage] = []
        self._arrived = anyio.Event()

    def __call__(self, message: InboxMessage) -> None:
        self.messages.append(message)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def wait_for(self, count: int, timeout_s: float = 10) -> list[str]:
        with anyio.fail_after(timeout_s):
            while len(self.messages) < count:
                await self._arrived.wait()
        return [m.payload for m in self.messages]


async def send(hub: StreamHub, key: str, text: str, kind: str = "note") -> Posted:
    return await post(hub.backend, key, kind=kind, payload=text, source="test")


async def test_messages_reach_the_owner_once_each_in_order(hub: StreamHub) -> None:
    producer, _ = await hub.register("k")
    received = Received()
    producer.inbox.on("note", received)
    ids = [(await send(hub, "k", f"m{i}")).id for i in range(20)]
    assert await received.wait_for(20) == [f"m{i}" for i in range(20)]
    assert [m.id for m in received.messages] == ids
    await anyio.sleep(hub.config.renew_every_s * 2)
    assert len(received.messages) == 20
    await producer.close()


async def test_messages_sent_before_the_handler_wait_for_it(hub: StreamHub) -> None:
    producer, _ = await hub.register("k")
    other = Received()
    producer.inbox.on("other", other)
    await send(hub, "k", "early")
    await send(hub, "k", "for the other kind", kind="other")
    await other.wait_for(1)
    received = Received()
    producer.inbox.on("note", received)
    assert await received.wait_for(1) == ["early"]
    await send(hub, "k", "late")
    assert await received.wait_for(2) == ["early", "late"]
    assert [m.payload for m in other.messages] == ["for the other kind"]
    await producer.close()


async def test_a_handler_that_raises_does_not_stop_the_others(hub: StreamHub) -> None:
    producer, _ = await hub.register("k")
    received = Received()

    def flaky(message: InboxMessage) -> None:
        received(message)
        if message.payload == "boom":
            raise RuntimeError("handler bug")

    producer.inbox.on("note", flaky)
    await send(hub, "k", "boom")
    await send(hub, "k", "after")
    assert await received.wait_for(2) == ["boom", "after"]
    await producer.close()


def _post_script() -> str:
    path = resources.files("fastapi_streamhub.backends").joinpath("lua/inbox_post.lua")
    return path.read_text("utf-8")


async def _post_unheard(server: RedisServer, key: str, text: str, *, kill: bool) -> None:
    """Post as `backend.post` does, with its signal lost: published on a channel nobody
    hears, or (`kill`) after the Pub/Sub connections were killed in the same transaction."""
    names = KeySpace()
    channel = names.control_channel(key) if kill else "nobody-listens"
    keys = [names.state(key), names.inbox(key), channel]
    async with server.client() as admin, admin.pipeline(transaction=True) as pipe:
        if kill:
            pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        pipe.eval(_post_script(), 3, *keys, "note", text, "test", 100)
        *_, reply = await pipe.execute()
    assert reply[0] == "ok", reply


@pytest.mark.parametrize("kill", [True, False], ids=["pubsub-killed", "signal-lost"])
async def test_a_message_whose_signal_is_lost_still_arrives_once(
    redis_server: RedisServer, kill: bool
) -> None:
    async with StreamHub(backend=RedisBackend.from_url(redis_server.url), lease_ttl_s=1) as hub:
        producer: Producer
        producer, _ = await hub.register("k")
        received = Received()
        producer.inbox.on("note", received)
        await send(hub, "k", "heard")
        await received.wait_for(1)
        await _post_unheard(redis_server, "k", "unheard", kill=kill)
        assert await received.wait_for(2) == ["heard", "unheard"]
        await send(hub, "k", "heard again")
        assert await received.wait_for(3) == ["heard", "unheard", "heard again"]
        await anyio.sleep(hub.config.renew_every_s * 2)
        assert len(received.messages) == 3
        await producer.close()


async def test_messages_of_an_ended_generation_are_not_read_by_the_next(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(lease_ttl_s=1) as hub:
        first, _ = await hub.register("k")
        await send(hub, "k", "for the first")
        await first.close()
        second, _ = await hub.register("k")
        received = Received()
        second.inbox.on("note", received)
        await send(hub, "k", "for the second")
        assert await received.wait_for(1) == ["for the second"]
        await anyio.sleep(hub.config.renew_every_s * 2)
        assert [m.payload for m in received.messages] == ["for the second"]
        await second.close()


async def test_the_inboxes_of_every_producer_cost_one_read_per_round(
    redis_server: RedisServer,
) -> None:
    """A renewal round reads the inboxes of all the producers of a process in one call,
    however many there are: 50 producers, and every round's `inbox_take` carries 50 reads."""
    count = 50
    per_round = 3 + 2 * count + 1 + 2 * count  # EVALSHA sha numkeys, keys, limit, ARGV per read
    sha = Scripts().sha["inbox_take"]
    async with StreamHub(
        backend=RedisBackend.from_url(redis_server.url), lease_ttl_s=0.4, shutdown_grace_s=0.1
    ) as hub:
        producers = [(await hub.register(f"k{i}"))[0] for i in range(count)]

        async def rounds(n: int) -> list[int]:
            calls: list[int] = []

            async def enough() -> bool:
                calls[:] = await faults.script_calls(redis_server, sha)
                return calls.count(per_round) >= n

            await eventually(enough)
            return calls

        await faults.log_every_command(redis_server)
        await rounds(1)  # every producer is read by the rounds from now on
        await faults.log_every_command(redis_server)
        calls = await rounds(3)
        for producer in producers:
            await producer.close()
    assert set(calls) == {per_round}, calls
