"""The Redis backend's inbox: messages to a running generation (`lua/inbox_*.lua`).

A post is one script: it checks that the generation runs, appends to the session's
inbox Stream (same hash tag, so same slot on a cluster) and publishes `inbox` on the
session's control channel, where its owner listens. The owner's reads of many
generations go out one call per hash slot, like lease renewals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import BackendUnavailableError
from ._base import InboxEntry, InboxRead, Posted, PostOutcome
from ._scripts import Call

if TYPE_CHECKING:
    from .._keys import KeySpace


class RedisInbox:
    """Mixed into `RedisBackend`, which provides the key space and the calls."""

    if TYPE_CHECKING:
        _keys: KeySpace

        async def _call(self, call: Call) -> Any: ...

        async def _call_each(self, calls: Sequence[Call]) -> list[Any]: ...

        def _groups(self, keys: Sequence[str]) -> list[list[int]]: ...

    async def post(
        self, key: str, *, kind: str, payload: str, source: str, max_entries: int
    ) -> PostOutcome:
        keys = [self._keys.state(key), self._keys.inbox(key), self._keys.control_channel(key)]
        reply = await self._call(Call("inbox_post", keys, [kind, payload, source, max_entries]))
        if reply[0] == "ok":
            return Posted(reply[2], reply[1])
        if reply[0] in ("not_found", "not_running", "full"):
            outcome: PostOutcome = reply[0]
            return outcome
        raise BackendUnavailableError(f"unexpected inbox reply {reply!r}")

    async def take(
        self, reads: Sequence[InboxRead], *, limit: int
    ) -> list[list[InboxEntry] | None]:
        if not reads:
            return []
        groups = self._groups([read.key for read in reads])
        calls = [self._take_call([reads[i] for i in group], limit) for group in groups]
        found: list[list[InboxEntry] | None] = [None] * len(reads)
        for group, replies in zip(groups, await self._call_each(calls), strict=True):
            if isinstance(replies, Exception):
                raise BackendUnavailableError(f"reading inboxes failed: {replies}") from replies
            for index, reply in zip(group, replies, strict=True):
                found[index] = _entries(reply)
        return found

    def _take_call(self, reads: Sequence[InboxRead], limit: int) -> Call:
        keys: list[str] = []
        args: list[str | int] = [limit]
        for read in reads:
            keys += (self._keys.state(read.key), self._keys.inbox(read.key))
            args += (read.generation, read.after)
        return Call("inbox_take", keys, args)


def _entries(reply: Any) -> list[InboxEntry] | None:
    if not isinstance(reply, list):
        return None
    return [
        InboxEntry(reply[i], reply[i + 1], reply[i + 2], reply[i + 3])
        for i in range(0, len(reply), 4)
    ]
