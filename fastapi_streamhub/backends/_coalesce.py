"""Appends of every producer in the process, sent together.

Each producer already batches its own events while its write is in flight; this
does the same across producers. Calls that arrive while a pipeline is in flight
go out together in the next one, so two hundred streams at an LLM's pace cost a
handful of round trips a tick instead of two hundred. A producer's own writes
stay in order: it awaits each before sending the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_Call = tuple[list[Any], "asyncio.Future[Any]"]


class ScriptCoalescer:
    def __init__(self, client: Redis, script: AsyncScript) -> None:
        self._client = client
        self._script = script
        self._waiting: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(([len(keys), *keys, *args], future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="streamhub-appends")
        return await future

    async def aclose(self) -> None:
        """Stop a flush in flight; its callers see it cancelled."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush(self) -> None:
        try:
            while self._waiting:
                calls, self._waiting = self._waiting, []
                try:
                    results = await self._execute([arguments for arguments, _ in calls])
                except BaseException as exc:
                    _settle(calls, [exc] * len(calls))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    _settle(calls, results)
        finally:
            self._flusher = None

    async def _execute(self, calls: list[list[Any]]) -> list[Any]:
        results = await self._pipeline(calls)
        if any(isinstance(r, NoScriptError) for r in results):
            await self._client.script_load(self._script.script)
            results = await self._pipeline(calls)
        return results

    async def _pipeline(self, calls: list[list[Any]]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for arguments in calls:
                pipe.execute_command("EVALSHA", self._script.sha, *arguments)
            return list(await pipe.execute(raise_on_error=False))


def _settle(calls: list[_Call], results: list[Any]) -> None:
    for (_, future), result in zip(calls, results, strict=True):
        if future.done():
            continue
        if isinstance(result, asyncio.CancelledError):
            future.cancel()
        elif isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
