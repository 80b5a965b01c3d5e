"""`StreamClient`: start, attach to, steer, cancel and inspect the streams of a
fastapi-streamhub app."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self, cast, get_args

import httpx

from .._events import Status
from .._status import CancelResult, StreamStatus
from .._steering import Steered
from ._errors import StreamClientError, request_error
from ._retry import RetrySettings
from ._stream import ResumableStream, StreamRequest

_STATUSES: Final = frozenset(get_args(Status))


class StreamClient:
    """An async client for the routes of a `@resumable_stream` endpoint.

    `path` is always the path of the decorated route, for example `"/chat/1"`; the
    client derives `{path}/stream`, `{path}/cancel`, `{path}/steer` and `{path}/status`
    from it.

        async with StreamClient("http://localhost:8000") as client:
            async with client.start("/chat/1", json={"text": "Hi"}) as stream:
                async for event in stream:
                    ...

    Args:
        base_url: the app's URL, for a client this object creates (and closes).
        http: an `httpx.AsyncClient` of yours to send the requests with, instead of
            `base_url` (its own base URL, auth, transport and limits apply); you close it.
        headers: sent with every request, e.g. `{"Authorization": "Bearer ..."}`.
        max_reconnects: reconnections tried in a row without receiving an event
            before `ReconnectFailedError`.
        max_reconnect_time_s: time spent reconnecting without receiving an event
            before `ReconnectFailedError`.
        backoff_initial_s: the wait before the second reconnection in a row, doubled
            for each next one (the first is immediate); None uses the server's `retry:`
            hint (2 s unless the hub is configured otherwise).
        backoff_max_s: the longest wait between two reconnections.
        timeout_s: bound on connecting, sending, and each JSON answer (cancel, status).
        read_timeout_s: the longest silence on an open stream before it counts as
            dropped; keep it above the hub's `keepalive_s` (15 s by default).
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        http: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        max_reconnects: int = 10,
        max_reconnect_time_s: float = 60.0,
        backoff_initial_s: float | None = None,
        backoff_max_s: float = 10.0,
        timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        if http is not None and base_url:
            raise ValueError("pass either base_url or http (with its own base_url), not both")
        if timeout_s <= 0 or read_timeout_s <= 0:
            raise ValueError("timeout_s and read_timeout_s must be positive")
        self._retry = RetrySettings(
            max_reconnects, max_reconnect_time_s, backoff_initial_s, backoff_max_s
        )
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(base_url=base_url)
        self._headers = dict(headers or {})
        self._timeout = httpx.Timeout(timeout_s)
        self._stream_timeout = httpx.Timeout(timeout_s, read=read_timeout_s)

    def start(self, path: str, *, json: Any = None) -> ResumableStream:
        """Start a generation (`POST {path}` with `json` as the body), or attach to the
        running one, and read it to its end; nothing is sent before the first iteration.

        Raises (while iterating):
            StreamRequestError: the start was refused (`StreamConflictError` for 409,
                `NotAllowedError` for 401/403, ...).
            StreamClientError: the start request got no answer at all, so the client
                cannot tell whether the generation started (`attach` to find out).
            ReconnectFailedError: the connection could not be re-established.
        """
        return self._stream(StreamRequest("POST", path, json), path, None)

    def attach(self, path: str, *, last_event_id: str | None = None) -> ResumableStream:
        """Read the current generation (`GET {path}/stream`): from its start, or after
        `last_event_id`, the id of the last event you processed.

        Raises:
            InvalidCursorError: `last_event_id` is not of the form `<generation>:<seq>`.

        Raises (while iterating):
            StreamNotFoundError: no stream under the path's key.
            CursorRejectedError: the server refused the cursor (ahead of the stream).
            ReconnectFailedError: the connection could not be (re-)established.
        """
        request = StreamRequest("GET", _sibling(path, "stream"))
        return self._stream(request, path, last_event_id)

    def _stream(self, first: StreamRequest, path: str, cursor: str | None) -> ResumableStream:
        return ResumableStream(
            self._http,
            first,
            resume_url=_sibling(path, "stream"),
            last_event_id=cursor,
            headers=self._headers,
            timeout=self._stream_timeout,
            retry=self._retry,
        )

    async def cancel(self, path: str) -> CancelResult:
        """Cancel the running generation (`POST {path}/cancel`), wherever it runs.

        Cancelling a generation that has already ended is not an error: the result's
        `cancelled` is then False.

        Raises:
            StreamNotFoundError: no stream under the path's key.
            StreamRequestError: any other refusal (`NotAllowedError`, 503, ...).
        """
        body = await self._json("POST", _sibling(path, "cancel"))
        status = _status(body)
        try:
            cancelled, stopped = bool(body["cancelled"]), bool(body["stopped"])
        except KeyError as exc:
            raise _unexpected("cancel", body) from exc
        return CancelResult(key=status.key, cancelled=cancelled, stopped=stopped, status=status)

    async def steer(self, path: str, message: Any) -> Steered:
        """Send `message` (any JSON value) to the running generation (`POST {path}/steer`),
        wherever it runs; its generator receives it once, and the stream gets a `steer` event.

        Raises:
            StreamNotFoundError: no stream under the path's key.
            StreamConflictError: no generation is running (it ended): the message is not kept.
            StreamRequestError: any other refusal (413: too large, 429, 503, ...).
            TypeError: `message` cannot be encoded as JSON.
        """
        body = await self._json("POST", _sibling(path, "steer"), body=json.dumps(message))
        try:
            return Steered(str(body["key"]), str(body["id"]), str(body["generation"]))
        except KeyError as exc:
            raise _unexpected("steer", body) from exc

    async def status(self, path: str) -> StreamStatus:
        """The stream's state (`GET {path}/status`), as any instance sees it.

        Raises:
            StreamNotFoundError: no stream under the path's key.
            StreamRequestError: any other refusal.
        """
        return _status(await self._json("GET", _sibling(path, "status")))

    async def _json(self, method: str, url: str, body: str | None = None) -> dict[str, Any]:
        """The JSON object a route answered with `200` (`202` to a request with a body)."""
        headers = dict(self._headers)
        if body is not None:
            headers["content-type"] = "application/json"
        response = await self._http.request(
            method, url, headers=headers, content=body, timeout=self._timeout
        )
        if response.status_code != (200 if body is None else 202):
            raise request_error(method, url, response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _unexpected(url, response.text[:200])
        return body

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it; safe to call twice."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _sibling(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/{name}"


def _status(body: dict[str, Any]) -> StreamStatus:
    try:
        status = StreamStatus(
            key=str(body["key"]),
            status=cast("Status", body["status"]),
            generation=str(body["generation"]),
            last_seq=int(body["last_seq"]),
            metadata=dict(body["metadata"]),
            producer_running=bool(body["producer_running"]),
            pending=bool(body.get("pending", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _unexpected("status", body) from exc
    if status.status not in _STATUSES:
        raise _unexpected("status", body)
    return status


def _unexpected(what: str, body: object) -> StreamClientError:
    return StreamClientError(f"unexpected {what} answer: {str(body)[:200]}")
