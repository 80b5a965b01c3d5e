"""Which Redis failures are "retry later" and which are final.

Every reply is a result, a transient failure, or a final one. Transient failures
(the server away, paused, loading, out of memory, a read-only replica after a
failover, a cluster re-sharding or failing over) become `BackendUnavailableError`,
which the hub retries within `write_deadline_s`. Anything else is final: a refused
write ends only its own stream, and an error no stream explains is a bug that
propagates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._errors import BackendUnavailableError

TRANSIENT_PREFIXES = (
    "OOM",
    "READONLY",
    "BUSY",
    "LOADING",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "NOREPLICAS",
)
"""Error codes of replies that say "not now" (as a script's `pcall` reports them too)."""

_TRANSIENT_TYPES = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    ClusterDownError,
    RedisClusterException,
    OSError,
)


def is_transient(error: BaseException) -> bool:
    """True for a failure that a retry may get past."""
    if isinstance(error, _TRANSIENT_TYPES):
        return True
    return isinstance(error, ResponseError) and is_transient_message(str(error))


def is_transient_message(message: str) -> bool:
    """True for an error reply whose code says "not now" (`OOM ...`, `READONLY ...`)."""
    code = message.lstrip().split(" ", 1)[0].upper()
    return code in TRANSIENT_PREFIXES


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn transient failures into `BackendUnavailableError`; let the rest through."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise BackendUnavailableError(f"Redis is unavailable: {exc}") from exc
        raise
