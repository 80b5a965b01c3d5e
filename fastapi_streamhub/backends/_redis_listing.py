"""Listing the sessions stored under the Redis backend's prefix, for operators (the
`streamhub` command line), never on a request's path.

`SCAN` walks the keyspace in steps, so a large database is never blocked by one
command; on a cluster, redis-py's `scan_iter` walks every primary in turn. Only the
state hashes of this prefix match the pattern, and a name that does not parse back
to a key (someone else's key that happens to match) is skipped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, cast

from ._redis_errors import unavailable_as_error

if TYPE_CHECKING:
    from .._keys import KeySpace
    from ._scripts import Client

_SCAN_COUNT = 1000
"""Keys Redis looks at per `SCAN` step: a few hundred microseconds of its time each."""

_USAGE_SAMPLES = 0
"""`MEMORY USAGE ... SAMPLES 0` measures every entry of a stream, not a sample of five."""


class RedisListing:
    """Mixed into `RedisBackend`, which provides the client and the key space."""

    if TYPE_CHECKING:
        _client: Client
        _keys: KeySpace

    async def session_keys(self, *, limit: int) -> list[str]:
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit!r}")
        found: dict[str, None] = {}
        scan = self._client.scan_iter(
            match=self._keys.state_pattern(), count=_SCAN_COUNT, _type="hash"
        )
        names = cast("AsyncGenerator[str, None]", scan)  # redis-py types it loosely
        with unavailable_as_error():
            async with aclosing(names):
                async for name in names:
                    key = self._keys.key_of_state(name)
                    if key is not None:
                        found[key] = None  # SCAN may return a name twice
                        if len(found) >= limit:
                            break
        return list(found)

    async def session_bytes(self, keys: Sequence[str]) -> list[int | None]:
        if not keys:
            return []
        with unavailable_as_error():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    for name in (self._keys.state(key), self._keys.events(key)):
                        pipe.memory_usage(name, samples=_USAGE_SAMPLES)
                replies = await pipe.execute()
        sizes: list[int | None] = []
        for state, events in zip(replies[::2], replies[1::2], strict=True):
            sizes.append(None if state is None else int(state) + int(events or 0))
        return sizes
