"""Redis clients from URLs: `redis://`, `rediss://`, `unix://`, `redis+sentinel://`
and `redis+cluster://`.

`redis+sentinel://[:password@]host:port[,host:port...]/service[/db]` names the
Sentinels to ask and the service whose master to use (the password is the
master's); the client follows the master across failovers.

`redis+cluster://[user:password@]host:port[,host:port...]` names some nodes of a
Redis Cluster (any of them; the client learns the rest); `rediss+cluster://` uses TLS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

_CLUSTER_RETRIES = 3
"""redis-py's cluster client retries a lost connection at once, after reloading the
slot map, with no backoff: a few tries follow a moved slot or a promoted replica;
the hub retries above them, with backoff, within `write_deadline_s`."""

NodeClientFactory = Callable[[ClusterNode], Redis]

DECODING_ERRORS = "replace"
"""Everything the library stores is UTF-8; a reply that is not (a message someone else
published on a watched channel) must not raise inside redis-py's reader, where it would
break the connection: it decodes with replacement characters, which no notification
holds, so it reads as a message this release cannot decode (a storage hint)."""

HEALTH_CHECK_S = 30
"""A connection idle this long is pinged before use, so one that died meanwhile (a
failover, a `CLIENT KILL`) is replaced before a command is lost on it."""


def library_retry() -> Retry:
    """redis-py's own retry: one quick reconnection after a lost connection.

    Its default (ten attempts, each up to the socket timeout) could hold one call for
    nearly a minute against a frozen server; the hub retries above it, within
    `write_deadline_s`, and must keep control of the time.
    """
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 1, (RedisConnectionError,))


def client_from_url(
    url: str, *, socket_timeout_s: float, max_connections: int
) -> tuple[Redis, list[Redis]]:
    """The client, and the clients it relies on that its owner must close too."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": DECODING_ERRORS,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
        "retry": library_retry(),
        "health_check_interval": HEALTH_CHECK_S,
    }
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
        return _sentinel_client(url, {**options, "max_connections": max_connections})
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=socket_timeout_s, **options
    )
    return Redis.from_pool(pool), []


def _sentinel_client(url: str, options: dict[str, Any]) -> tuple[Redis, list[Redis]]:
    parts = urlsplit(url)
    hosts = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":")
        hosts.append((host or "localhost", int(port or 26379)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"a Sentinel URL names the service: {url!r}")
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    if parts.password is not None:
        options = {**options, "password": unquote(parts.password)}
    if parts.scheme.startswith("rediss"):
        options = {**options, "ssl": True}
    timeouts: dict[str, Any] = {k: v for k, v in options.items() if k.startswith("socket_")}
    timeouts["retry"] = library_retry()
    sentinel = Sentinel(hosts, sentinel_kwargs=timeouts, db=db, **options)  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(service, redis_class=Redis)
    return master, list(sentinel.sentinels)


def cluster_client_from_url(
    url: str, *, socket_timeout_s: float, max_connections: int
) -> tuple[RedisCluster, NodeClientFactory]:
    """A cluster client for `redis+cluster://[user:password@]host:port[,host:port...]`
    (`rediss+cluster://` for TLS), and a factory of plain clients for one of its nodes
    with the same credentials and timeouts (for sharded Pub/Sub)."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a cluster URL: {url!r}")
    nodes = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":")
        if not host:
            raise ValueError(f"a cluster URL names host:port of its nodes: {url!r}")
        nodes.append((host, int(port or 6379)))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a cluster has only database 0: {url!r}")
    options: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": DECODING_ERRORS,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    if parts.scheme.startswith("rediss"):
        options["ssl"] = True
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        max_connections=max_connections,
        retry=Retry(NoBackoff(), _CLUSTER_RETRIES),
        **options,
    )

    def node_client(node: ClusterNode) -> Redis:
        """For one node's sharded Pub/Sub. No reconnection inside redis-py: it would
        subscribe every channel again in one SSUBSCRIBE, which Redis refuses across
        slots; the listener starts over on a new connection instead, slot by slot."""
        return Redis(
            host=node.host,
            port=int(node.port),
            retry=Retry(NoBackoff(), 0),
            health_check_interval=HEALTH_CHECK_S,
            **options,
        )

    return cluster, node_client
