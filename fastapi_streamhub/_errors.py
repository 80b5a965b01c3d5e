"""Exceptions raised by fastapi-streamhub.

Hierarchy::

    StreamHubError
    ├── HubNotStartedError      the hub was used before `async with hub` / its lifespan
    ├── InvalidKeyError         a stream key that cannot be stored (empty, too long)
    ├── InvalidCursorError      a malformed resume cursor (HTTP 400)
    ├── SessionNotFoundError    no stream under that key (HTTP 404)
    ├── SessionBusyError        the key is active and owned by another instance (HTTP 409)
    ├── NotRunningError         no generation of the key is running to take a message (HTTP 409)
    ├── InboxFullError          too many messages wait for the running generation (HTTP 429)
    ├── MessageTooLargeError    a steering message over `max_message_bytes` (HTTP 413)
    ├── BackendUnavailableError the storage did not answer (a retry may succeed)
    ├── ProducerStoppedError    publish after the producer ended (cancelled, fenced, closed)
    │   └── StaleGenerationError  the producer's generation is no longer current
    └── SubscriberLaggedError   a subscriber fell too far behind live events
"""

from __future__ import annotations


class StreamHubError(Exception):
    """Base class of every error this library raises on purpose."""


class HubNotStartedError(StreamHubError):
    def __init__(self) -> None:
        super().__init__(
            "the StreamHub is not started: pass `lifespan=hub.lifespan` to FastAPI, "
            "call `hub.init_app(app)`, or use `async with hub:`"
        )


class InvalidKeyError(StreamHubError, ValueError):
    pass


class InvalidCursorError(StreamHubError, ValueError):
    pass


class SessionNotFoundError(StreamHubError, LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stream under key {key!r}")
        self.key = key


class SessionBusyError(StreamHubError):
    def __init__(self, key: str, generation: str) -> None:
        super().__init__(f"stream {key!r} is already being produced (generation {generation})")
        self.key = key
        self.generation = generation


class NotRunningError(StreamHubError):
    """The key has a session, but no running generation to take a message: it ended (a
    message is never kept for the next one), or its producer's lease lapsed."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no generation of stream {key!r} is running")
        self.key = key


class InboxFullError(StreamHubError):
    def __init__(self, key: str, limit: int) -> None:
        super().__init__(f"{limit} messages to the running generation of {key!r} are not read yet")
        self.key = key


class MessageTooLargeError(StreamHubError, ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"a steering message may take at most {max_bytes} bytes as JSON")
        self.max_bytes = max_bytes


class BackendUnavailableError(StreamHubError):
    pass


class ProducerStoppedError(StreamHubError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"the producer of {key!r} has stopped: {reason}")
        self.key = key
        self.reason = reason


class StaleGenerationError(ProducerStoppedError):
    def __init__(self, key: str) -> None:
        super().__init__(key, "its generation is no longer current (another producer took over)")


class SubscriberLaggedError(StreamHubError):
    def __init__(self, key: str, max_queue: int) -> None:
        super().__init__(
            f"subscriber of {key!r} fell more than {max_queue} events behind; "
            "resume from its last cursor"
        )
        self.key = key


class StreamError(Exception):
    """Raise inside a producer to end its stream with an `error` event carrying `message`.

    Any other exception ends the stream with a generic message, so that no internals
    reach the client; this one is for messages written to be shown.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
