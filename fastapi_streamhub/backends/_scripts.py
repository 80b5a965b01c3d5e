"""The Lua scripts of the Redis backend, called by SHA through redis-py's public API.

Every script is loaded when the backend opens, so a burst of first calls meets no
`NOSCRIPT`. A script Redis lost since (a restart, a failover to a replica that
never saw it: scripts are not replicated) is loaded again and the refused calls,
which did not run, are sent again. Calls go out as plain `EVALSHA` commands, not
through redis-py's `Script` objects, whose pipelines ask `SCRIPT EXISTS` before
every round (and which a cluster pipeline refuses).

On a cluster the scripts publish with `SPUBLISH`: a plain `PUBLISH` is broadcast
to every node of the cluster, a sharded one reaches only the shard that holds the
session, where its readers' process subscribed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

NAMES = (
    "claim",
    "append",
    "refresh",
    "finish",
    "release",
    "read",
    "states",
    "adopt",
    "details",
    "compact",
    "hook",
    "hook_index",
    "seen",
    "abandon",
    "inbox_post",
    "inbox_take",
)

Arg = str | int
Client = Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class Call:
    """One script call: its name, its keys (one hash slot), its other arguments."""

    script: str
    keys: Sequence[str]
    args: Sequence[Arg]


class Scripts:
    def __init__(self, *, sharded: bool = False) -> None:
        folder = resources.files(__package__).joinpath("lua")
        self.source = {name: folder.joinpath(f"{name}.lua").read_text("utf-8") for name in NAMES}
        if sharded:
            self.source = {
                name: text.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
                for name, text in self.source.items()
            }
        self.sha = {
            name: hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()
            for name, text in self.source.items()
        }

    async def load(self, client: Client, names: Sequence[str] = NAMES) -> None:
        """Load scripts (on a cluster, on every primary)."""
        for name in names:
            await client.script_load(self.source[name])

    async def call(self, client: Client, call: Call) -> Any:
        """One call; raises what Redis answered, as redis-py's exception."""
        try:
            return await self._evalsha(client, call)
        except NoScriptError:
            await self.load(client, [call.script])
            return await self._evalsha(client, call)

    def _evalsha(self, client: Client, call: Call) -> Any:
        return client.evalsha(self.sha[call.script], len(call.keys), *call.keys, *call.args)

    async def call_many(self, client: Client, calls: Sequence[Call]) -> list[Any]:
        """Calls in one round trip; each reply in place, an error reply as its exception."""
        replies = await self._pipelined(client, calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            await self.load(client, sorted({calls[i].script for i in lost}))
            again = await self._pipelined(client, [calls[i] for i in lost])
            for index, reply in zip(lost, again, strict=True):
                replies[index] = reply
        return replies

    async def _pipelined(self, client: Client, calls: Sequence[Call]) -> list[Any]:
        """One pipeline: on a cluster, one round trip per node, the nodes in parallel.
        With `raise_on_error=False` a cluster pipeline never retries a call on its own
        (a retry would run a script a second time)."""
        async with client.pipeline(transaction=False) as pipe:
            for call in calls:
                self.queue(pipe, call)
            return list(await pipe.execute(raise_on_error=False))

    def queue(self, pipe: Any, call: Call) -> None:
        """Queue `call` on a pipeline (a cluster pipeline refuses its `evalsha` method)."""
        pipe.execute_command(
            "EVALSHA", self.sha[call.script], len(call.keys), *call.keys, *call.args
        )
