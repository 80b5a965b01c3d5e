"""Pytest fixtures for real servers, loaded by `tests/conftest.py` via `pytest_plugins`.

- `anyio_backend`: "asyncio", session scope (so fixtures of any scope may be async).
- `redis_server`: a fresh `RedisServer` per test; `redis_url`: its URL.
- `make_redis_server(**options)`: more servers, or with options (`appendonly=True`).
- `make_uvicorn_server(app, **options)`: started `UvicornServer`s.
- `redis_cluster`: a fresh `LocalCluster` (3 primaries, 1 replica each) for a test that
  injects faults; `make_redis_cluster(**options)`: more, or with options.
- `shared_redis_cluster`: one cluster for the whole session, flushed before each test
  (starting one costs about 2 s); replaced if an earlier test left it broken.

Everything a factory made is stopped when the test ends. Each server's log is printed
at teardown, which pytest shows only for a failed test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.support.redis_cluster import LocalCluster
from tests.support.redis_server import RedisServer
from tests.support.uvicorn_server import UvicornServer


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run `@pytest.mark.anyio` tests on asyncio only."""
    return "asyncio"


def _print_logs(name: str, server: RedisServer | UvicornServer) -> None:
    print(f"----- {name} log (port {server.port}) -----\n{server.logs()[-8000:]}")


def _print_cluster_logs(cluster: LocalCluster) -> None:
    print(f"----- redis cluster logs -----\n{cluster.logs()}")


@pytest.fixture
def make_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """A factory: `make_redis_server(appendonly=True)` returns a started `RedisServer`."""
    with ExitStack() as stack:

        def make(**options: Any) -> RedisServer:
            server = stack.enter_context(RedisServer(**options))
            stack.callback(_print_logs, "redis-server", server)
            return server

        yield make


@pytest.fixture
def redis_server(make_redis_server: Callable[..., RedisServer]) -> RedisServer:
    """A fresh, empty `RedisServer` for this test (not the shared one on 6379)."""
    return make_redis_server()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """`redis://127.0.0.1:<port>/0` of this test's `redis_server`."""
    return redis_server.url


@pytest.fixture
def make_uvicorn_server() -> Iterator[Callable[..., UvicornServer]]:
    """A factory: `make_uvicorn_server("pkg.mod:app", env={...})` returns a started server."""
    with ExitStack() as stack:

        def make(app: str, **options: Any) -> UvicornServer:
            server = stack.enter_context(UvicornServer(app, **options))
            stack.callback(_print_logs, f"uvicorn {app}", server)
            return server

        yield make


@pytest.fixture
def make_redis_cluster() -> Iterator[Callable[..., LocalCluster]]:
    """A factory: `make_redis_cluster(node_timeout_ms=2000)` returns a started cluster."""
    with ExitStack() as stack:

        def make(**options: Any) -> LocalCluster:
            cluster = stack.enter_context(LocalCluster(**options))
            stack.callback(_print_cluster_logs, cluster)
            return cluster

        yield make


@pytest.fixture
def redis_cluster(make_redis_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """A fresh cluster of its own, for a test that kills nodes or moves slots."""
    return make_redis_cluster()


class _SharedCluster:
    """Holds the session's cluster; starts a new one when a test left it broken."""

    def __init__(self) -> None:
        self.cluster: LocalCluster | None = None

    def get(self) -> LocalCluster:
        if self.cluster is not None and self.cluster.problem() is not None:
            self.cluster.close()
            self.cluster = None
        if self.cluster is None:
            self.cluster = LocalCluster().start()
        self.cluster.flushall()
        return self.cluster

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


@pytest.fixture(scope="session")
def _shared_cluster_holder() -> Iterator[_SharedCluster]:
    holder = _SharedCluster()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def shared_redis_cluster(_shared_cluster_holder: _SharedCluster) -> Iterator[LocalCluster]:
    """The session's cluster, empty (FLUSHALL on every primary) and whole.

    For tests that only read and write: a test that kills nodes, moves slots or
    changes settings takes `redis_cluster` instead.
    """
    cluster = _shared_cluster_holder.get()
    yield cluster
    _print_cluster_logs(cluster)
