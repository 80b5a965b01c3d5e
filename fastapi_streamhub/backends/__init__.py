"""Storage backends: one contract (`Backend`), two implementations."""

from ._base import Backend, Control, EventBatch, Notification, SessionState, WriteOutcome
from .memory import MemoryBackend

__all__ = [
    "Backend",
    "Control",
    "EventBatch",
    "MemoryBackend",
    "Notification",
    "SessionState",
    "WriteOutcome",
]
