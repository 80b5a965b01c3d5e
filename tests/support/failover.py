"""A Sentinel-managed primary whose replica can be made to miss the last writes.

    async with SentinelFailover(primary, replica) as setup:   # two started RedisServers
        hub = StreamHub.from_url(setup.url)                   # redis+sentinel://...
        await setup.wait_replica_in_sync()
        setup.stall_replication()       # the replica hears nothing more from the primary
        ...                             # writes the primary acknowledges, the replica lacks
        await setup.fail_over()         # SIGKILL the primary; Sentinel promotes the replica

The replica replicates through a `TcpProxy`, so stalling replication is a real
stalled network link: both servers keep their connection and the replica still
believes it is in sync (as asynchronous replication lets it). Sentinel then
promotes it with whatever it had, which is how a failover loses acknowledged
writes. Every wait is bounded.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import anyio
import redis

from tests.support import redis_faults as faults
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sentinel_server import SentinelServer
from tests.support.tcp_proxy import TcpProxy

DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelFailover:
    """`primary` (started with `redis_faults.PRIMARY_ARGS`), `replica` linked to it
    through a proxy, and a Sentinel monitoring them with a quick failover."""

    def __init__(self, primary: RedisServer, replica: RedisServer) -> None:
        self.primary = primary
        self.replica = replica
        self.sentinel = SentinelServer(
            primary, down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=FAILOVER_TIMEOUT_MS
        )
        self.link = TcpProxy(primary.port)
        self._stack = AsyncExitStack()

    @property
    def url(self) -> str:
        """`redis+sentinel://...`: clients follow the primary across the failover."""
        return self.sentinel.url

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.link)
            await faults.replicate(self.replica, self.link.port)
            await self.wait_replica_in_sync()
            await anyio.to_thread.run_sync(self.sentinel.start)
            stack.callback(self.sentinel.close)
            await self._wait_sentinel_knows_replica()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            print(f"----- sentinel log -----\n{self.sentinel.logs()[-8000:]}")
        self.link.thaw()
        await self._stack.aclose()

    async def wait_replica_in_sync(self) -> None:
        await faults.wait_in_sync(self.primary, self.replica)

    def stall_replication(self) -> None:
        """From now on the replica receives nothing from the primary (nor notices)."""
        self.link.freeze()

    async def fail_over(self) -> None:
        """Kill the primary (SIGKILL) and wait until Sentinel has promoted the replica."""
        self.primary.kill()

        async def promoted() -> bool:
            address = await self._sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME")
            try:
                role = await faults.command(self.replica, "ROLE")
            except redis.ConnectionError:  # the promotion kills the replica's clients
                return False
            return int(address[1]) == self.replica.port and role[0] == "master"

        await eventually(promoted, timeout_s=30, interval_s=0.05)

    async def _wait_sentinel_knows_replica(self) -> None:
        async def known() -> bool:
            replicas = await self._sentinel("SENTINEL", "REPLICAS")
            return any(
                int(entry["port"]) == self.replica.port
                and entry["flags"] == "slave"
                and entry.get("master-link-status") == "ok"
                for entry in map(_as_dict, replicas)
            )

        await eventually(known, timeout_s=30, interval_s=0.05)

    async def _sentinel(self, *args: str) -> Any:
        return await faults.command(self.sentinel, *args, self.sentinel.service)


def _as_dict(entry: dict[str, str] | list[str]) -> dict[str, str]:
    if isinstance(entry, dict):
        return entry
    return dict(zip(entry[::2], entry[1::2], strict=True))
