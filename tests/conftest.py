"""Suite-wide fixtures.

The infrastructure fixtures come from `tests/support/fixtures.py` (see its docstring):
`anyio_backend`, `redis_server`, `redis_url`, `make_redis_server`, `make_uvicorn_server`.
Async tests need `@pytest.mark.anyio` (or `pytestmark = pytest.mark.anyio` per module).
"""

import shutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fastapi_streamhub import StreamHub
from fastapi_streamhub.backends import Backend, MemoryBackend
from fastapi_streamhub.backends.redis import RedisBackend
from fastapi_streamhub.backends.redis_cluster import RedisClusterBackend
from tests.support.redis_server import RedisServer

pytest_plugins = ("tests.support.fixtures", "tests.support.observing")

# ----------------------------------------------------------------------------------------
# Hub fixtures, parametrised over the memory, Redis and Redis Cluster backends.
# ----------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Every test that uses a hub or a backend runs once per backend."""
    return str(request.param)


@pytest.fixture
def make_backend(backend_kind: str, request: pytest.FixtureRequest) -> Callable[[], Backend]:
    def make() -> Backend:
        if backend_kind == "redis":
            return RedisBackend.from_url(request.getfixturevalue("redis_url"))
        if backend_kind == "cluster":
            cluster = request.getfixturevalue("shared_redis_cluster")
            return RedisClusterBackend.from_url(cluster.url)
        if backend_kind == "valkey":
            return RedisBackend.from_url(request.getfixturevalue("valkey_url"))
        return MemoryBackend()

    return make


SHUTDOWN_GRACE_S = 0.1
"""The grace hub fixtures give running producers at shutdown: a test's teardown should
not wait out the default 5 s; a test that needs a grace passes `shutdown_grace_s`."""


@pytest.fixture
def valkey_url(make_redis_server: Callable[..., RedisServer]) -> str:
    """A private `valkey-server` (Debian: bookworm-backports), where it is installed."""
    if shutil.which("valkey-server") is None:
        pytest.skip("valkey-server is not installed (scripts/install-valkey installs it)")
    return make_redis_server(executable="valkey-server").url


@pytest.fixture
def make_hub(make_backend: Callable[[], Backend]) -> Callable[..., StreamHub]:
    """`make_hub(**options)`: a hub (not started) on this test's backend."""

    def make(**options: Any) -> StreamHub:
        options.setdefault("shutdown_grace_s", SHUTDOWN_GRACE_S)
        return StreamHub(backend=make_backend(), **options)

    return make


@pytest.fixture
async def hub(make_hub: Callable[..., StreamHub]) -> AsyncIterator[StreamHub]:
    """A started hub with a short lease, so lapse tests finish quickly."""
    async with make_hub(lease_ttl_s=1.0) as started:
        yield started
