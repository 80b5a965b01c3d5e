"""What the Redis scripts answer, read into the backend contract's types."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from .._errors import BackendUnavailableError
from .._events import Status
from .._logs import about
from ._base import Append, AppendOutcome, Gap, SessionState, WriteOutcome
from ._redis_errors import is_transient, is_transient_message

logger = logging.getLogger("fastapi_streamhub")

_OUTCOMES = frozenset({"ok", "stale", "done", "error", "cancelled"})


def outcome_of(key: str, generation: str, reply: Any) -> AppendOutcome:
    """A refused write ends only its own stream; one refused for now is retried."""
    text = str(reply)
    if text in _OUTCOMES:
        return cast("WriteOutcome", text)
    if text.startswith("gap:"):
        return Gap(int(text[4:]))
    message = text.removeprefix("error:")
    if is_transient_message(message):
        return "unavailable"
    logger.error(
        "stream %r (generation %s): Redis refused the write: %s",
        key,
        generation,
        message,
        extra=about(key, generation),
    )
    return "failed"


def group_outcomes(writes: Sequence[Append], reply: Any) -> list[AppendOutcome]:
    """The outcome of each write of one script call: its own, or the call's failure."""
    if not isinstance(reply, Exception):
        return [
            outcome_of(write.key, write.generation, o)
            for write, o in zip(writes, reply, strict=True)
        ]
    if is_transient(reply) or isinstance(reply, BackendUnavailableError):
        return ["unavailable"] * len(writes)
    logger.error("Redis refused %d writes: %r", len(writes), reply)
    return ["failed"] * len(writes)


def session_state(key: str, row: Sequence[Any], *, pending: bool = False) -> SessionState:
    status, generation, owner, lease_left, last_seq, metadata = row[-6:]
    return SessionState(
        key=key,
        status=cast("Status", status),
        generation=generation,
        owner=owner,
        last_seq=int(last_seq),
        metadata=metadata,
        lease_expired=int(lease_left) <= 0,
        pending=pending,
    )
