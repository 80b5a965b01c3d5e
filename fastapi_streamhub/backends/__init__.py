"""Storage backends: one contract (`Backend`), two implementations."""

from ._base import (
    Append,
    Backend,
    Control,
    EventBatch,
    Lease,
    Notification,
    SessionState,
    WriteOutcome,
)
from .memory import MemoryBackend

__all__ = [
    "Append",
    "Backend",
    "Control",
    "EventBatch",
    "Lease",
    "MemoryBackend",
    "Notification",
    "SessionState",
    "WriteOutcome",
]
