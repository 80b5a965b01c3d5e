"""The backend contract for listing sessions (`session_keys`), on memory, Redis, Valkey and
a Redis Cluster: every stored session once, under this prefix only, keys with the
characters that storage escapes come back as they were given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from fastapi_streamhub import StreamEvent
from fastapi_streamhub.backends import Append, Backend
from fastapi_streamhub.backends.redis import RedisBackend
from fastapi_streamhub.backends.redis_cluster import RedisClusterBackend
from tests.support.polling import eventually
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio

ODD_KEYS = ["chat:1", "a{b}c", "100%", "%7B", "*", "[x]", "back\\slash", "日本", "k" * 512]


@pytest.fixture(params=["memory", "redis", "cluster", "valkey"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def backend(make_backend: Callable[[], Backend]) -> AsyncIterator[Backend]:
    backend = make_backend()
    await backend.open(lambda key, note: None, lambda: None)
    async with anyio.create_task_group() as group:
        group.start_soon(backend.run)
        yield backend
        group.cancel_scope.cancel()
    await backend.aclose()


async def claim(backend: Backend, key: str, *, retention_ms: int = 60_000) -> None:
    created, _ = await backend.claim(
        key, generation="g1", owner="me", lease_ms=retention_ms, retention_ms=retention_ms
    )
    assert created


async def test_every_session_is_listed_once_with_its_key_as_given(backend: Backend) -> None:
    assert await backend.session_keys(limit=100) == []
    for key in ODD_KEYS:
        await claim(backend, key)
    assert sorted(await backend.session_keys(limit=100)) == sorted(ODD_KEYS)


async def test_the_limit_bounds_the_answer(backend: Backend) -> None:
    for n in range(30):
        await claim(backend, f"k{n}")
    listed = await backend.session_keys(limit=7)
    assert len(listed) == 7
    assert set(listed) <= {f"k{n}" for n in range(30)}
    with pytest.raises(ValueError, match="limit"):
        await backend.session_keys(limit=0)


async def test_removed_and_expired_sessions_are_not_listed(backend: Backend) -> None:
    await claim(backend, "kept")
    await claim(backend, "removed")
    await claim(backend, "expiring", retention_ms=50)
    assert await backend.remove("removed")

    async def expired() -> bool:
        return "expiring" not in await backend.session_keys(limit=100)

    await eventually(expired)
    assert await backend.session_keys(limit=100) == ["kept"]


async def test_only_this_prefix_is_listed(redis_server: RedisServer) -> None:
    redis_url = redis_server.url
    mine = RedisBackend.from_url(redis_url, prefix="app:")
    longer = RedisBackend.from_url(redis_url, prefix="app:x:")
    glob = RedisBackend.from_url(redis_url, prefix="a*[p]:")
    try:
        for backend, key in ((mine, "one"), (longer, "two"), (glob, "three")):
            await claim(backend, key)
        async with redis_server.client() as raw:
            await raw.hset("app:{stray}:state:copy", "status", "done")
            await raw.set("app:{notahash}:state", "x")
        assert await mine.session_keys(limit=10) == ["one"]
        assert await longer.session_keys(limit=10) == ["two"]
        assert await glob.session_keys(limit=10) == ["three"]
    finally:
        for backend in (mine, longer, glob):
            await backend.aclose()


async def test_a_cluster_is_listed_across_every_primary(
    shared_redis_cluster: LocalCluster,
) -> None:
    keys = shared_redis_cluster.keys_on_each_primary(per_primary=3)
    expected = sorted(key for per_node in keys.values() for key in per_node)
    backend = RedisClusterBackend.from_url(shared_redis_cluster.url)
    try:
        for key in expected:
            await claim(backend, key)
        assert len(keys) == 3
        assert sorted(await backend.session_keys(limit=100)) == expected
    finally:
        await backend.aclose()


async def test_the_bytes_of_each_session_grow_with_its_events(backend: Backend) -> None:
    await claim(backend, "small")
    await claim(backend, "large")
    data = '"' + "x" * 20_000 + '"'
    events = [StreamEvent("g1", seq, None, data) for seq in range(1, 6)]
    (outcome,) = await backend.append_many([Append("large", "g1", events)], retention_ms=60_000)
    assert outcome == "ok"
    small, large, missing = await backend.session_bytes(["small", "large", "missing"])
    assert missing is None
    assert small is not None and large is not None
    assert large >= 5 * 20_000 > small
    assert await backend.session_bytes([]) == []
    done = StreamEvent("g1", 6, "done", "{}")
    (ended,) = await backend.append_many([Append("large", "g1", [done])], retention_ms=60_000)
    assert ended == "ok"
    assert await backend.compact("large", generation="g1", chunk=100) == "done"
    (compacted,) = await backend.session_bytes(["large"])
    assert compacted is not None and compacted >= 5 * 20_000
