"""Storage backends: one contract (`Backend`), two implementations."""

from ._base import (
    AdoptOutcome,
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
    "AdoptOutcome",
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
