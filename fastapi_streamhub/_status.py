"""What the status and cancel APIs answer: a stream as any instance sees it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._events import Status
from ._result import StreamResult
from .backends._base import SessionState


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A stream's state as any instance sees it."""

    key: str
    status: Status
    generation: str
    last_seq: int
    metadata: dict[str, Any]
    producer_running: bool
    pending: bool = False
    """Handed to a job queue, and no worker has started it yet."""

    @property
    def last_event_id(self) -> str:
        return f"{self.generation}:{self.last_seq}"


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel found and did."""

    key: str
    cancelled: bool
    """True if this call ended the stream; False if it had already ended."""
    stopped: bool
    """True once the producer has been seen to stop (within the wait)."""
    status: StreamStatus
    result: StreamResult | None = None
    """The generation as the cancel left it: everything stored before `cancelled`."""

    @property
    def text_length(self) -> int | None:
        """Characters of text the answer holds (fetch it with `hub.result`)."""
        return None if self.result is None else len(self.result.text)

    @property
    def usage(self) -> Any:
        """The usage metadata, if the generator set any."""
        return None if self.result is None else self.result.usage

    @property
    def last_content_event_id(self) -> str | None:
        """The id of the last event stored before the terminal one (None if there was
        none): the end of what the answer holds."""
        result = self.result
        if result is None or result.status == "running" or result.last_seq <= 1:
            return None
        return f"{result.generation}:{result.last_seq - 1}"


def stream_status(state: SessionState) -> StreamStatus:
    return StreamStatus(
        key=state.key,
        status=state.status,
        generation=state.generation,
        last_seq=state.last_seq,
        metadata=json.loads(state.metadata),
        producer_running=bool(state.owner) and not state.lease_expired,
        pending=state.pending,
    )


def producer_stopped(state: SessionState | None) -> bool:
    return state is None or not state.owner or state.lease_expired
