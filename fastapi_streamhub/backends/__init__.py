"""Storage backends: one contract (`Backend`), two implementations."""

from ._base import (
    Append,
    AppendOutcome,
    Backend,
    Control,
    EventBatch,
    Gap,
    Lease,
    Notification,
    Page,
    SessionState,
    StorageHint,
    WriteOutcome,
)
from .memory import MemoryBackend

__all__ = [
    "Append",
    "AppendOutcome",
    "Backend",
    "Control",
    "EventBatch",
    "Gap",
    "Lease",
    "MemoryBackend",
    "Notification",
    "Page",
    "SessionState",
    "StorageHint",
    "WriteOutcome",
]
