"""fastapi-streamhub: resumable, cancellable LLM token streams for FastAPI."""

from ._cursor import Cursor
from ._decorator import resumable_stream
from ._dependency import get_hub
from ._dispatched import dispatched_stream
from ._errors import (
    BackendUnavailableError,
    HubNotStartedError,
    InboxFullError,
    InvalidCursorError,
    InvalidKeyError,
    JoinRefusedError,
    MessageTooLargeError,
    NotRunningError,
    ProducerStoppedError,
    SessionBusyError,
    SessionNotFoundError,
    StaleGenerationError,
    StreamError,
    StreamHubError,
    SubscriberLaggedError,
)
from ._events import Event, Sourced, StreamEvent, UnsupportedChunkError
from ._health import HubHealth
from ._health_routes import health_router
from ._http_errors import (
    BadCursorHTTPError,
    ForbiddenHTTPError,
    InboxFullHTTPError,
    InvalidKeyHTTPError,
    MessageTooLargeHTTPError,
    NotRunningHTTPError,
    StorageUnavailableHTTPError,
    StreamConflictHTTPError,
    StreamHTTPError,
    StreamNotFoundHTTPError,
)
from ._hub import StreamHub
from ._jobs import JobOutcome, StreamJob
from ._joined import JoinedSource
from ._mount import mount_stream_routes
from ._observe import Observer
from ._policy import StreamPolicy
from ._producer import Producer
from ._result import ResultEvent, StreamResult
from ._runner import current_producer
from ._source import Source
from ._status import CancelResult, StreamStatus
from ._steering import Steered, SteeringMessage
from ._subscription import Subscription

__all__ = [
    "BackendUnavailableError",
    "BadCursorHTTPError",
    "CancelResult",
    "Cursor",
    "Event",
    "ForbiddenHTTPError",
    "HubHealth",
    "HubNotStartedError",
    "InboxFullError",
    "InboxFullHTTPError",
    "InvalidCursorError",
    "InvalidKeyError",
    "InvalidKeyHTTPError",
    "JobOutcome",
    "JoinRefusedError",
    "JoinedSource",
    "MessageTooLargeError",
    "MessageTooLargeHTTPError",
    "NotRunningError",
    "NotRunningHTTPError",
    "Observer",
    "Producer",
    "ProducerStoppedError",
    "ResultEvent",
    "SessionBusyError",
    "SessionNotFoundError",
    "Source",
    "Sourced",
    "StaleGenerationError",
    "Steered",
    "SteeringMessage",
    "StorageUnavailableHTTPError",
    "StreamConflictHTTPError",
    "StreamError",
    "StreamEvent",
    "StreamHTTPError",
    "StreamHub",
    "StreamHubError",
    "StreamJob",
    "StreamNotFoundHTTPError",
    "StreamPolicy",
    "StreamResult",
    "StreamStatus",
    "SubscriberLaggedError",
    "Subscription",
    "UnsupportedChunkError",
    "current_producer",
    "dispatched_stream",
    "get_hub",
    "health_router",
    "mount_stream_routes",
    "resumable_stream",
]
