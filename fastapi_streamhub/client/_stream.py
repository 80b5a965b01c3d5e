"""One stream read to its end across as many connections as it takes.

Deliberate choices (read before changing):

- After the start request has been answered with `200`, every reconnection is a
  `GET {path}/stream` with `Last-Event-ID`, never the `POST` again: repeating the start
  could begin a second generation once the first has ended.
- A start that fails before any answer is retried only when the request surely never
  left (no connection): otherwise the generation may have started, and the client says
  so instead of guessing.
- An `error` whose id repeats the last one is the hub's unstored end (`unavailable`,
  `producer_lost`): it is terminal, so it is yielded although its id is not new.
- A response that ends without a terminal event (a lagged reader, a restarting
  instance, a proxy) is a dropped connection: reconnect.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import anyio
import httpx
from httpx_sse import EventSource, ServerSentEvent

from .._events import StreamEvent
from ._errors import ReconnectFailedError, StreamClientError, request_error
from ._retry import Backoff, RetrySettings
from ._tracker import EventTracker

_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_DEFAULT_HINT_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """The first request of a stream: the start (`POST`) or an attach (`GET`)."""

    method: str
    url: str
    json: Any = None


class _ConnectionLost(Exception):
    """This connection is over without the stream's end: reconnect (bounded)."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class ResumableStream:
    """The events of one stream, across reconnections, each exactly once.

    Obtain it from `StreamClient.start` or `StreamClient.attach`; iterate it with
    `async for`, preferably inside `async with` so that leaving early closes the
    connection at once. Iteration ends after a terminal event (`done`, `error`,
    `cancelled`, which is yielded) or when the server answers `204` (everything
    was already seen).

    A `reset` event (`event.event == "reset"`) means the generation being read was
    replaced: what you built from earlier events is void, and the new generation
    follows from seq 1.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        first: StreamRequest,
        *,
        resume_url: str,
        last_event_id: str | None,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
        retry: RetrySettings,
    ) -> None:
        self._http = http
        self._first = first
        self._resume_url = resume_url
        self._headers = dict(headers)
        self._timeout = timeout
        self._tracker = EventTracker(last_event_id)
        self._backoff = Backoff(retry)
        self._hint_s = _DEFAULT_HINT_S
        self._opened = False
        self._ended = False
        self._reconnects = 0
        self._events = self._run()

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event yielded (or the cursor given to `attach`): resume from
        it later with `StreamClient.attach(path, last_event_id=...)`."""
        return self._tracker.cursor

    @property
    def generation(self) -> str | None:
        """The generation being read; None before the first event."""
        return self._tracker.generation

    @property
    def reconnects(self) -> int:
        """How many times this stream reconnected."""
        return self._reconnects

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the connection; safe to call twice. The stream's producer is not affected."""
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        while True:
            # Until the first request is answered with a stream, it is the one to repeat.
            request = StreamRequest("GET", self._resume_url) if self._opened else self._first
            try:
                async with aclosing(self._read(request)) as events:
                    async for event in events:
                        yield event
                if self._ended:
                    return
                lost = _ConnectionLost("the response ended before the stream did")
            except _ConnectionLost as exc:
                lost = exc
            await self._wait_to_reconnect(lost)
            self._reconnects += 1

    async def _wait_to_reconnect(self, lost: _ConnectionLost) -> None:
        delay = self._backoff.next_delay_s(hint_s=self._hint_s, retry_after_s=lost.retry_after_s)
        if delay is None:
            raise ReconnectFailedError(
                f"gave up reconnecting to {self._resume_url} after "
                f"{self._backoff.attempts - 1} attempts; last failure: {lost}",
                last_event_id=self.last_event_id,
                attempts=self._backoff.attempts - 1,
            ) from lost.__cause__ or lost
        await anyio.sleep(delay)

    async def _read(self, request: StreamRequest) -> AsyncGenerator[StreamEvent, None]:
        """One connection: yield its new events; raise `_ConnectionLost` to reconnect."""
        answered = False
        try:
            async with self._http.stream(
                request.method,
                request.url,
                headers=self._request_headers(request),
                json=request.json,
                timeout=self._timeout,
            ) as response:
                answered = True
                if response.status_code == 204:
                    self._ended = True
                    return
                await _check_answer(request, response)
                self._opened = True
                async with aclosing(EventSource(response).aiter_sse()) as received:
                    async for sse in received:
                        event = self._take(sse)
                        if event is not None:
                            yield event
                        if self._ended:
                            return
        except httpx.TransportError as exc:
            self._transport_failed(request, exc, answered=answered)

    def _request_headers(self, request: StreamRequest) -> dict[str, str]:
        headers = dict(self._headers)
        cursor = self._tracker.cursor
        if request.method == "GET" and cursor is not None:
            headers["Last-Event-ID"] = cursor
        return headers

    def _take(self, sse: ServerSentEvent) -> StreamEvent | None:
        """The event to yield, if `sse` is new; raise `_ConnectionLost` on a gap."""
        if sse.retry is not None:
            self._hint_s = sse.retry / 1000
        if not sse.data:  # a `retry:` block, or a comment after an id: no event at all
            return None
        verdict, event = self._tracker.judge(sse)
        if verdict == "duplicate":
            return None
        if verdict == "gap":
            raise _ConnectionLost(f"event {event.id} does not follow {self.last_event_id}")
        self._backoff.progress()
        self._ended = event.terminal
        return event

    def _transport_failed(
        self, request: StreamRequest, exc: httpx.TransportError, *, answered: bool
    ) -> None:
        if request.method == "POST" and not answered and not isinstance(exc, _NOT_SENT):
            raise StreamClientError(
                f"POST {request.url} got no answer ({exc!r}); the stream may have started: "
                "attach to it to find out"
            ) from exc
        raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc


async def _check_answer(request: StreamRequest, response: httpx.Response) -> None:
    """Let a `200` event stream through; raise for anything else."""
    status = response.status_code
    if status in _RETRY_STATUSES:
        raise _ConnectionLost(
            f"{request.method} {request.url} answered {status}",
            retry_after_s=_retry_after_s(response),
        )
    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if status == 200 and content_type == "text/event-stream":
        return
    await response.aread()
    detail = f"not an event stream: {content_type!r}" if status == 200 else None
    raise request_error(request.method, request.url, response, detail)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
