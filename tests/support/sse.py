"""Read Server-Sent Events over httpx, parsed exactly as a browser's `EventSource` does.

    events = await read_events(http, "POST", "/chat/1", json={"text": "hi"})
    assert [e.json() for e in events[:-1]] == ["Hel", "lo"] and events[-1].event == "done"

    stream = await read_stream(http, "GET", "/chat/1/stream", headers={"Last-Event-ID": c})
    assert stream.status_code == 204 and stream.events == []

Reading stops at a terminal event (`done`, `error`, `cancelled`), after `limit`
events, or when the server closes the stream; it is bounded by `timeout_s` as a
whole (a `TimeoutError` that lists what did arrive).

Deliberate divergence: the connection comes from httpx-sse's `aconnect_sse`, but the
parsing does not use its `aiter_sse`. That decoder dispatches an event for a block
with no `data:` line, so once any `id:` has been seen, every keep-alive comment
(`: ping`) yields a phantom empty `message` event, and a `retry:`-only block does too;
a browser dispatches neither. `SSEParser` below is the WHATWG algorithm, small enough
to read in one go. It also records whether each event carried its own `id:` (a
browser silently reuses the previous one), which the wire contract needs checked.

In-process `httpx.ASGITransport` collects the whole response before returning it, so
a stream that never ends needs a real server: see `UvicornServer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import httpx
from httpx_sse import aconnect_sse

TERMINAL_EVENTS = frozenset({"done", "error", "cancelled"})
_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSE:
    """One dispatched event.

    Attributes:
        event: The `event:` field, or "message" when there was none.
        data: The `data:` lines joined with "\\n".
        id: The last event id as a browser reports it (it persists across events).
        has_id: Whether this event's own block carried an `id:` field.
    """

    event: str
    data: str
    id: str
    has_id: bool = True

    def json(self) -> Any:
        """`data` decoded as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental parser for `text/event-stream` text (WHATWG HTML, 9.2.6).

    Attributes:
        last_event_id: The last `id:` seen.
        retry: The last valid `retry:` value seen, in ms.
        comments: Every comment line, without the colon and one leading space.
    """

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: int | None = None
        self.comments: list[str] = []
        self._pending = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._has_id = False

    def feed(self, text: str) -> list[SSE]:
        """Parse the next chunk of text; return the events it completes."""
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        buffer, pos, events = self._pending + text, 0, []
        for eol in _EOL.finditer(buffer):
            if eol.group() == "\r" and eol.end() == len(buffer):
                break  # Maybe the first half of a CRLF split across chunks.
            events += self._line(buffer[pos : eol.start()])
            pos = eol.end()
        self._pending = buffer[pos:]
        return events

    def close(self) -> list[SSE]:
        """End of stream: settle a held trailing CR. An unterminated event is dropped."""
        pending, self._pending = self._pending, ""
        return self._line(pending[:-1]) if pending.endswith("\r") else []

    def _line(self, line: str) -> list[SSE]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return []
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id, self._has_id = value, True
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return []

    def _dispatch(self) -> list[SSE]:
        data, event, has_id = self._data, self._event, self._has_id
        self._data, self._event, self._has_id = [], "", False
        if not data:
            return []
        return [SSE(event or "message", "\n".join(data), self.last_event_id, has_id)]


@dataclass
class SSEStream:
    """What one request returned. For a response that is not an event stream (a 204,
    a 404 with a JSON body, ...), `events` is empty and `body` holds the content."""

    status_code: int
    headers: httpx.Headers
    events: list[SSE] = field(default_factory=list)
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    body: bytes = b""


async def read_stream(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    limit: int | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> SSEStream:
    """Send one request and read its SSE response until a terminal event, `limit`
    events, or the end of the stream; all of it within `timeout_s`."""
    parser = SSEParser()
    events: list[SSE] = []
    try:
        with anyio.fail_after(timeout_s):
            async with aconnect_sse(
                client, method, url, headers=dict(headers or {}), json=json, params=params
            ) as source:
                response = source.response
                result = SSEStream(response.status_code, response.headers, events)
                if _is_event_stream(response.headers):
                    await _collect(response, parser, events, limit)
                else:
                    result.body = await response.aread()
    except TimeoutError:
        got = [(e.event, e.id, e.data[:80]) for e in events]
        message = f"{method} {url}: stream not finished in {timeout_s} s; got {got}"
        raise TimeoutError(message) from None
    result.retry, result.comments = parser.retry, parser.comments
    return result


async def read_events(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    limit: int | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> list[SSE]:
    """`read_stream(...).events`, after checking that the answer was a 200 event stream."""
    stream = await read_stream(
        client,
        method,
        url,
        limit=limit,
        headers=headers,
        json=json,
        params=params,
        timeout_s=timeout_s,
    )
    if stream.status_code != 200 or not _is_event_stream(stream.headers):
        raise AssertionError(f"{method} {url}: {stream.status_code} {stream.body[:500]!r}")
    return stream.events


def _is_event_stream(headers: httpx.Headers) -> bool:
    content_type = str(headers.get("content-type", ""))
    return content_type.partition(";")[0].strip() == "text/event-stream"


async def _collect(
    response: httpx.Response, parser: SSEParser, events: list[SSE], limit: int | None
) -> None:
    async with aclosing(cast("AsyncGenerator[str]", response.aiter_text())) as chunks:
        async for chunk in chunks:
            for event in parser.feed(chunk):
                events.append(event)
                if event.event in TERMINAL_EVENTS or len(events) == limit:
                    return
    events += parser.close()
