"""A `redis+sentinel://` URL: the hub finds the master through a real Sentinel."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fastapi_streamhub import StreamHub
from tests.support.redis_server import RedisServer
from tests.support.sentinel_server import SentinelServer
from tests.support.streams import collect

pytestmark = pytest.mark.anyio


@pytest.fixture
def sentinel(make_redis_server: Callable[..., RedisServer]) -> Iterator[SentinelServer]:
    with SentinelServer(make_redis_server()) as server:
        yield server


async def test_a_stream_through_a_sentinel_managed_master(sentinel: SentinelServer) -> None:
    async with StreamHub.from_url(sentinel.url) as hub:
        producer, created = await hub.register("chat:s")
        assert created
        for word in ("through", " the", " sentinel"):
            await producer.publish(word)
        await producer.close()
        events = await collect(hub, "chat:s")
    assert [e.value for e in events] == ["through", " the", " sentinel", {}]
    async with sentinel.master.client() as master:
        assert await master.exists("streamhub:{chat:s}:state", "streamhub:{chat:s}:events") == 2


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/"],
)
def test_a_sentinel_url_must_name_the_service(url: str) -> None:
    with pytest.raises(ValueError, match="names the service"):
        StreamHub.from_url(url)
