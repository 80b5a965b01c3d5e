"""The Redis backend's calls that end and settle a generation: details, compaction, the
finish hook and its index, readers seen, abandonment. One script each (`lua/`); those
that take many sessions go out one call per hash slot, like the writer's rounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .._errors import BackendUnavailableError
from ._base import CompactOutcome, HookState, HookTake, SessionDetails, Unread
from ._packing import ENTRY_BYTES
from ._redis_replies import session_state
from ._scripts import Call

if TYPE_CHECKING:
    from .._keys import KeySpace

_HOOK_STATES: dict[str, HookState] = {"": "none", "o": "owed", "r": "running", "d": "done"}


class RedisEnds:
    """Mixed into `RedisBackend`, which provides the key space and the calls."""

    if TYPE_CHECKING:
        _keys: KeySpace

        async def _call(self, call: Call) -> Any: ...

        async def _call_each(self, calls: Sequence[Call]) -> list[Any]: ...

        def _groups(self, keys: Sequence[str]) -> list[list[int]]: ...

    async def details(self, key: str) -> SessionDetails | None:
        row = await self._call(Call("details", [self._keys.state(key)], []))
        if not row:
            return None
        return SessionDetails(
            state=session_state(key, row[:6], pending=bool(row[11])),
            started_ms=int(row[6]),
            ended_ms=int(row[7]) if row[7] else None,
            hook=_HOOK_STATES.get(row[8], "none"),
            hook_name=row[9],
            compacted=bool(row[10]),
        )

    async def compact(self, key: str, *, generation: str, chunk: int) -> CompactOutcome:
        keys = [self._keys.state(key), self._keys.events(key), self._keys.packing(key)]
        reply = await self._call(Call("compact", keys, [generation, chunk, ENTRY_BYTES]))
        return cast("CompactOutcome", reply)

    async def take_hook(
        self, key: str, *, generation: str, holder: str, hold_ms: int, grace_ms: int
    ) -> HookTake:
        args: list[str | int] = ["take", generation, holder, hold_ms, grace_ms]
        return cast("HookTake", await self._call(Call("hook", [self._keys.state(key)], args)))

    async def hook_done(self, key: str, *, generation: str) -> None:
        await self._call(Call("hook", [self._keys.state(key)], ["done", generation, "", 0, 0]))

    async def owe_hooks(self, keys: Sequence[str], *, delay_ms: int) -> str:
        args: list[str | int] = ["add", delay_ms, *keys]
        return str(await self._call(Call("hook_index", [self._keys.hook_index()], args)))

    async def due_hooks(self, *, limit: int) -> list[tuple[str, str]]:
        call = Call("hook_index", [self._keys.hook_index()], ["due", limit])
        flat = await self._call(call)
        return [(flat[i], str(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def drop_hooks(self, entries: Sequence[tuple[str, str]]) -> None:
        if entries:
            args = ["drop", *(part for entry in entries for part in entry)]
            await self._call(Call("hook_index", [self._keys.hook_index()], args))

    async def mark_read(self, keys: Sequence[str], *, hold_ms: int) -> None:
        if not keys:
            return
        calls = [
            Call("seen", [self._keys.state(keys[i]) for i in group], [hold_ms])
            for group in self._groups(keys)
        ]
        for reply in await self._call_each(calls):
            if isinstance(reply, Exception):
                raise BackendUnavailableError(f"marking readers failed: {reply}") from reply

    async def abandon_unread(
        self, generations: Sequence[Unread], *, data: str, retention_ms: int
    ) -> list[bool]:
        if not generations:
            return []
        groups = self._groups([item.key for item in generations])
        calls = [
            self._abandon_call([generations[i] for i in group], data, retention_ms)
            for group in groups
        ]
        ended = [False] * len(generations)
        for group, reply in zip(groups, await self._call_each(calls), strict=True):
            if isinstance(reply, Exception):
                raise BackendUnavailableError(f"abandonment checks failed: {reply}") from reply
            for index, answer in zip(group, reply, strict=True):
                ended[index] = bool(answer)
        return ended

    def _abandon_call(self, items: Sequence[Unread], data: str, retention_ms: int) -> Call:
        keys: list[str] = []
        args: list[str | int] = [data, retention_ms]
        for item in items:
            key = item.key
            keys += (
                self._keys.state(key),
                self._keys.events(key),
                self._keys.event_channel(key),
                self._keys.control_channel(key),
            )
            args += (item.generation, item.window_ms)
        return Call("abandon", keys, args)
