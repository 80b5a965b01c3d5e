"""Storage backends: one contract (`Backend`), two implementations."""

from ._base import (
    AdoptOutcome,
    Append,
    AppendOutcome,
    Backend,
    Control,
    EventBatch,
    Gap,
    InboxEntry,
    InboxRead,
    Lease,
    Notification,
    Page,
    Posted,
    PostOutcome,
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
    "InboxEntry",
    "InboxRead",
    "Lease",
    "MemoryBackend",
    "Notification",
    "Page",
    "PostOutcome",
    "Posted",
    "SessionState",
    "StorageHint",
    "WriteOutcome",
]
