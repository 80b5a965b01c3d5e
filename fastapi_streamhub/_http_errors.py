"""The error answers of the library's routes, raised as FastAPI `HTTPException`s.

Raised rather than returned, so that an app's own exception handlers see them: one
handler for `StreamHTTPError` (or for `HTTPException`) reshapes them all. Without one,
FastAPI's default handler answers `{"detail": "<message>"}` with the status code, as
`docs/wire-protocol.md` lists.

Hierarchy::

    fastapi.HTTPException
    └── StreamHTTPError                  every error answer of the library
        ├── BadCursorHTTPError           400  malformed cursor, or one ahead of the stream
        ├── ForbiddenHTTPError           403  the route's `authorize` hook said no
        ├── StreamNotFoundHTTPError      404  no stream under the key
        ├── StreamConflictHTTPError      409  running, and `on_conflict="reject"`
        ├── NotRunningHTTPError          409  a steering message, and no generation running
        ├── MessageTooLargeHTTPError     413  a steering message over `max_message_bytes`
        ├── InvalidKeyHTTPError          422  the formatted key cannot be stored
        ├── InboxFullHTTPError           429  too many messages wait for the generation
        └── StorageUnavailableHTTPError  503  storage did not answer; `Retry-After: 1`
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import ClassVar

from fastapi import HTTPException

from ._errors import (
    BackendUnavailableError,
    InboxFullError,
    InvalidCursorError,
    InvalidKeyError,
    MessageTooLargeError,
    NotRunningError,
    SessionNotFoundError,
)
from ._spec import Action


class StreamHTTPError(HTTPException):
    """Base of the error answers of `@resumable_stream` routes and their mounted routes.

    `detail` is a message safe to show; `status_code` and `headers` are those of the
    answer. Register an exception handler for this class to reshape them all.
    """

    status: ClassVar[int] = 500

    def __init__(self, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(self.status, detail, headers)
        self.detail: str = detail


class BadCursorHTTPError(StreamHTTPError):
    """400: the resume cursor is malformed, or ahead of the stream's last event."""

    status = 400


class ForbiddenHTTPError(StreamHTTPError):
    """403: the route's `authorize` hook refused this action on this stream."""

    status = 403

    def __init__(self, action: Action) -> None:
        super().__init__(f"not allowed to {action} this stream")
        self.action = action


class StreamNotFoundHTTPError(StreamHTTPError):
    """404: no stream under the key (never started, expired, or removed)."""

    status = 404


class StreamConflictHTTPError(StreamHTTPError):
    """409: the key's generation is running and the route says `on_conflict="reject"`."""

    status = 409

    def __init__(self, key: str) -> None:
        super().__init__(f"stream {key!r} is already running")
        self.key = key


class NotRunningHTTPError(StreamHTTPError):
    """409: a steering message for a stream whose generation is not running (it ended:
    the message is not kept for the next one)."""

    status = 409


class MessageTooLargeHTTPError(StreamHTTPError):
    """413: a steering message larger than the hub's `max_message_bytes`."""

    status = 413


class InboxFullHTTPError(StreamHTTPError):
    """429: as many messages as may wait for the running generation are not read yet."""

    status = 429


class InvalidKeyHTTPError(StreamHTTPError):
    """422: the key formatted from the path cannot be stored (too long, say)."""

    status = 422


class StorageUnavailableHTTPError(StreamHTTPError):
    """503: the stream storage did not answer; sent with `Retry-After: 1`."""

    status = 503

    def __init__(self) -> None:
        super().__init__(
            "the stream storage is unavailable; retry shortly", headers={"Retry-After": "1"}
        )


@contextmanager
def http_errors() -> Iterator[None]:
    """Turn the hub's errors about a request into their HTTP answers."""
    try:
        yield
    except InvalidKeyError as exc:
        raise InvalidKeyHTTPError(str(exc)) from exc
    except InvalidCursorError as exc:
        raise BadCursorHTTPError(str(exc)) from exc
    except SessionNotFoundError as exc:
        raise StreamNotFoundHTTPError(str(exc)) from exc
    except NotRunningError as exc:
        raise NotRunningHTTPError(str(exc)) from exc
    except MessageTooLargeError as exc:
        raise MessageTooLargeHTTPError(str(exc)) from exc
    except InboxFullError as exc:
        raise InboxFullHTTPError(str(exc)) from exc
    except BackendUnavailableError as exc:
        raise StorageUnavailableHTTPError() from exc
