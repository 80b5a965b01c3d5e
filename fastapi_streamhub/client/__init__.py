"""A Python client for fastapi-streamhub endpoints that resumes by itself.

Needs the `client` extra: `pip install 'fastapi-streamhub[client]'` (httpx, httpx-sse).
It is what a worker, a CLI or a test uses to read a stream: it follows the wire
protocol (docs/wire-protocol.md) the way a careful browser would, reconnecting with
`Last-Event-ID` after a dropped connection and yielding every event exactly once.

There is no blocking variant: run the async client with `anyio.run` or `asyncio.run`.
"""

try:
    import httpx  # noqa: F401
    import httpx_sse  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fastapi_streamhub.client needs httpx and httpx-sse: "
        "pip install 'fastapi-streamhub[client]'"
    ) from exc

from ._client import StreamClient
from ._errors import (
    CursorRejectedError,
    NotAllowedError,
    ReconnectFailedError,
    StreamClientError,
    StreamConflictError,
    StreamNotFoundError,
    StreamRequestError,
)
from ._stream import ResumableStream

__all__ = [
    "CursorRejectedError",
    "NotAllowedError",
    "ReconnectFailedError",
    "ResumableStream",
    "StreamClient",
    "StreamClientError",
    "StreamConflictError",
    "StreamNotFoundError",
    "StreamRequestError",
]
