"""Exceptions raised by the client.

Hierarchy::

    StreamHubError
    └── StreamClientError           the client cannot give you the stream
        ├── StreamRequestError      the server answered a request with an error (4xx, ...)
        │   ├── CursorRejectedError     400: the cursor is malformed or ahead of the stream
        │   ├── NotAllowedError         401 or 403: authentication or `authorize` said no
        │   ├── StreamNotFoundError     404: no stream under this path's key
        │   └── StreamConflictError     409: the route rejects a start while one is running
        └── ReconnectFailedError    the connection kept failing: retries exhausted
"""

from __future__ import annotations

import httpx

from .._errors import StreamHubError


class StreamClientError(StreamHubError):
    """Base class of the client's errors; also raised when the server breaks the protocol."""


class StreamRequestError(StreamClientError):
    """The server answered with an error status, or with a body the client cannot use.

    Not retried: the same request would get the same answer.

    Attributes:
        method: the HTTP method of the request.
        url: the URL of the request.
        status_code: the HTTP status of the answer.
        detail: the server's `detail` message, or the start of the body.
    """

    def __init__(self, method: str, url: str, status_code: int, detail: str) -> None:
        super().__init__(f"{method} {url} answered {status_code}: {detail}")
        self.method = method
        self.url = url
        self.status_code = status_code
        self.detail = detail


class CursorRejectedError(StreamRequestError):
    """400: the cursor is malformed, or ahead of the stream; resume without one instead."""


class NotAllowedError(StreamRequestError):
    """401 or 403: the route's authentication, or its `authorize` hook, refused the request."""


class StreamNotFoundError(StreamRequestError):
    """404: no stream under the key (never started, expired, or removed)."""


class StreamConflictError(StreamRequestError):
    """409: the route is declared with `on_conflict="reject"` and a generation is running."""


class ReconnectFailedError(StreamClientError):
    """Reconnecting failed too often or for too long; the last failure is the `__cause__`.

    Attributes:
        last_event_id: the cursor of the last event received: resume from it later with
            `StreamClient.attach(path, last_event_id=...)`. None if no event arrived.
        attempts: how many reconnections were tried since the last event arrived.
    """

    def __init__(self, message: str, *, last_event_id: str | None, attempts: int) -> None:
        super().__init__(message)
        self.last_event_id = last_event_id
        self.attempts = attempts


_BY_STATUS: dict[int, type[StreamRequestError]] = {
    400: CursorRejectedError,
    401: NotAllowedError,
    403: NotAllowedError,
    404: StreamNotFoundError,
    409: StreamConflictError,
}


def request_error(
    method: str, url: str, response: httpx.Response, detail: str | None = None
) -> StreamRequestError:
    """The exception that names what the (read) `response`'s status means."""
    status = response.status_code
    error_class = _BY_STATUS.get(status, StreamRequestError)
    return error_class(method, url, status, _detail(response) if detail is None else detail)


def _detail(response: httpx.Response) -> str:
    """The library's (and FastAPI's) `{"detail": ...}`, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else str(detail)[:500]
