"""fastapi-streamhub: resumable, cancellable LLM token streams for FastAPI."""

from ._cursor import Cursor
from ._decorator import resumable_stream
from ._dependency import get_hub
from ._errors import (
    BackendUnavailableError,
    HubNotStartedError,
    InvalidCursorError,
    InvalidKeyError,
    ProducerStoppedError,
    SessionBusyError,
    SessionNotFoundError,
    StaleGenerationError,
    StreamError,
    StreamHubError,
    SubscriberLaggedError,
)
from ._events import Event, StreamEvent, UnsupportedChunkError
from ._hub import StreamHub
from ._producer import Producer
from ._runner import current_producer
from ._status import CancelResult, StreamStatus
from ._subscription import Subscription

__all__ = [
    "BackendUnavailableError",
    "CancelResult",
    "Cursor",
    "Event",
    "HubNotStartedError",
    "InvalidCursorError",
    "InvalidKeyError",
    "Producer",
    "ProducerStoppedError",
    "SessionBusyError",
    "SessionNotFoundError",
    "StaleGenerationError",
    "StreamError",
    "StreamEvent",
    "StreamHub",
    "StreamHubError",
    "StreamStatus",
    "SubscriberLaggedError",
    "Subscription",
    "UnsupportedChunkError",
    "current_producer",
    "get_hub",
    "resumable_stream",
]
