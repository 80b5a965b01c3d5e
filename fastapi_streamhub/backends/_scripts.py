"""The Lua scripts of the Redis backend, called by SHA through redis-py's public API.

Every script is loaded when the backend opens, so a burst of first calls meets no
`NOSCRIPT`. A script Redis lost since (a restart, a failover to a replica that
never saw it) is loaded again and the refused calls, which did not run, are sent
again. Calls go out as plain `EVALSHA` commands, not through redis-py's `Script`
objects, whose pipelines ask `SCRIPT EXISTS` before every round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

NAMES = ("claim", "append", "refresh", "finish", "release", "read", "states")

Arg = str | int


@dataclass(frozen=True, slots=True)
class Call:
    """One script call: its name, its keys (one hash slot), its other arguments."""

    script: str
    keys: Sequence[str]
    args: Sequence[Arg]


class Scripts:
    def __init__(self) -> None:
        folder = resources.files(__package__).joinpath("lua")
        self.source = {name: folder.joinpath(f"{name}.lua").read_text("utf-8") for name in NAMES}
        self.sha = {
            name: hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()
            for name, text in self.source.items()
        }

    async def load(self, client: Redis, names: Sequence[str] = NAMES) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.script_load(self.source[name])
            await pipe.execute()

    async def call(self, client: Redis, call: Call) -> Any:
        """One call; raises what Redis answered, as redis-py's exception."""
        try:
            return await self._evalsha(client, call)
        except NoScriptError:
            await self.load(client, [call.script])
            return await self._evalsha(client, call)

    def _evalsha(self, client: Redis, call: Call) -> Any:
        return client.evalsha(self.sha[call.script], len(call.keys), *call.keys, *call.args)

    async def call_many(self, client: Redis, calls: Sequence[Call]) -> list[Any]:
        """Calls in one round trip; each reply in place, an error reply as its exception."""
        replies = await self._pipelined(client, calls)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            await self.load(client, sorted({calls[i].script for i in lost}))
            again = await self._pipelined(client, [calls[i] for i in lost])
            for index, reply in zip(lost, again, strict=True):
                replies[index] = reply
        return replies

    async def _pipelined(self, client: Redis, calls: Sequence[Call]) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(self.sha[call.script], len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
