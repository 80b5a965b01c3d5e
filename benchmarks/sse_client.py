"""A cheap but strict SSE client over raw asyncio sockets: the load generator.

httpx and httpx-sse spend more CPU per event than the servers under test spend
producing it, so a benchmark through them would measure the client. This one
reads HTTP/1.1 by hand (chunked or close-delimited bodies), splits SSE lines as
the spec says (CRLF, LF or CR), and checks every stream it reads: ids
consecutive inside one generation, only data events before one `done`, then the
end of the response. Anything else raises `StreamBrokenError`, because a
benchmark that silently measures broken output is worthless.

A stream read as `text` keeps its text events, and takes a jump in seq on a text
event: from a compacted answer, one event stands for a run of tokens.

One exception, the one the wire contract allows: a response that ends cleanly
before its terminal event (fastapi-streamhub ends a subscriber that falls too
far behind) is resumed at once from the last id, as `EventSource` would do
after its `retry:` delay. Such resumes are counted, never hidden, and a stream
that keeps ending without delivering anything fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import cast

from benchmarks.wire import BodyDecoder, SSEParser

HOST = "127.0.0.1"
MAX_STALLS = 20


class StreamBrokenError(Exception):
    """A response that is not the complete, well-formed stream we asked for."""


class _Response(asyncio.Protocol):
    """One HTTP/1.1 exchange: sends the request, hands body bytes to its stream."""

    def __init__(self, stream: SSEStream, request: bytes) -> None:
        self._stream = stream
        self._request = request
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._body: BodyDecoder | None = None
        self._status = 0
        self._error = b""
        self._over = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._over:
            return
        try:
            if self._body is None:
                data = self._read_head(data)
            if self._body is not None and data:
                self._body.feed(data)
                if self._body.ended:
                    self._end(None)
        except StreamBrokenError as exc:
            self._end(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._over:
            return
        if self._body is not None and not self._body.chunked and self._status == 200:
            self._end(None)
        elif self._status not in (0, 200):
            self._end(self._http_error())
        else:
            self._end(StreamBrokenError(f"{self._stream.label}: connection lost ({exc})"))

    def _read_head(self, data: bytes) -> bytes:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head, rest = self._head[:end].decode("latin-1"), self._head[end + 4 :]
        status_line, *lines = head.split("\r\n")
        self._status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        if self._status != 200:
            self._body = BodyDecoder(chunked, self._collect_error)
        elif not headers.get("content-type", "").startswith("text/event-stream"):
            raise StreamBrokenError(f"{self._stream.label}: not an event stream: {headers}")
        else:
            self._body = BodyDecoder(chunked, self._stream.feed)
        return rest

    def _collect_error(self, data: bytes) -> None:
        self._error += data

    def _http_error(self) -> StreamBrokenError:
        text = self._error.decode(errors="replace")[:300]
        return StreamBrokenError(f"{self._stream.label}: HTTP {self._status}: {text}")

    def _end(self, exc: StreamBrokenError | None) -> None:
        self._over = True
        if exc is None and self._status != 200:
            exc = self._http_error()
        if self._transport is not None:
            self._transport.close()
        self._stream.response_ended(exc)


class SSEStream:
    """One logical SSE stream, verified event by event as it arrives.

    `first_seq` is the seq the first event must carry; `tokens`, when given, is
    how many data events must precede `done`. With `latency`, each event's
    `data.t` (the producer's `time.time()`) is subtracted from its arrival time.
    """

    def __init__(
        self,
        port: int,
        chat: str,
        first_seq: int,
        tokens: int | None,
        latency: bool,
        text: bool = False,
    ):
        loop = asyncio.get_running_loop()
        self.text_events: list[bytes] | None = [] if text else None
        self.label = chat
        self.started_at = 0.0
        self.ended_at = 0.0
        self.events = 0
        self.resumes = 0
        self.latencies: list[float] = []
        self.sources = 1
        self.source_ends = 0
        self.first_event: asyncio.Future[float] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._port = port
        self._chat = chat
        self._latency = latency
        self._tokens = tokens
        self._next_seq = first_seq
        self._generation: bytes | None = None
        self._done = False
        self.last_id: str | None = None  # the cursor to resume from
        self._stalls = 0  # responses in a row that ended early with no event
        self._parser = SSEParser(self._on_event)

    @property
    def generation(self) -> str:
        """The generation part of the ids seen (empty for the baseline's plain ids)."""
        return (self._generation or b"").decode()

    async def connect(self, method: str, path: str, last_id: str | None) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Accept: text/event-stream"]
        if last_id:
            lines.append(f"Last-Event-ID: {last_id}")
        request = "\r\n".join([*lines, "Content-Length: 0", "Connection: close", "", ""])
        self._parser = SSEParser(self._on_event)
        self._stalls += 1
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: _Response(self, request.encode()), HOST, self._port)

    def feed(self, data: bytes) -> None:
        if not self.finished.done():
            self._parser.feed(data, self._now())

    def _now(self) -> float:
        """Arrival time, read only when delays are measured (one clock read per read)."""
        return time.time() if self._latency else 0.0

    def response_ended(self, exc: StreamBrokenError | None) -> None:
        if self.finished.done():
            return
        if exc is None:
            try:
                self._parser.close(self._now())
            except StreamBrokenError as broken:
                exc = broken
        if exc is not None:
            self._fail(exc)
        elif self._done:
            self._finish()
        elif self._stalls <= MAX_STALLS:
            self.resumes += 1
            task = asyncio.ensure_future(self._resume())
            task.add_done_callback(self._resume_failed)
        else:
            msg = f"{self.label}: {MAX_STALLS} responses in a row ended early with no event"
            self._fail(StreamBrokenError(msg))

    async def _resume(self) -> None:
        await self.connect("GET", f"/chat/{self._chat}/stream", self.last_id)

    def _resume_failed(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(StreamBrokenError(f"{self.label}: resume failed: {exc!r}"))

    def _on_event(self, event: bytes, event_id: bytes, data: bytes, now: float) -> None:
        if self._done:
            raise StreamBrokenError(f"{self.label}: event after done: {event!r} {event_id!r}")
        generation, _, seq = event_id.rpartition(b":")
        if self._generation is None:
            self._generation = generation
        merged = self.text_events is not None and data[:1] == b'"' and int(seq) >= self._next_seq
        if (int(seq) != self._next_seq and not merged) or generation != self._generation:
            raise StreamBrokenError(
                f"{self.label}: expected seq {self._next_seq} of {self._generation!r}, "
                f"got id {event_id!r} ({event!r}: {data[:200]!r})"
            )
        self._next_seq = int(seq) + 1
        self._stalls = 0
        self.last_id = event_id.decode()
        if not self.first_event.done():
            self.first_event.set_result(time.perf_counter())
        if event == b"done":
            self._done = True
        elif event == b"source" and self.sources > 1:
            self._source_event(data, now)
        elif event:
            raise StreamBrokenError(f"{self.label}: unexpected {event!r} event: {data[:300]!r}")
        else:
            self.events += 1
            if self._latency:
                self.latencies.append(now - json.loads(data)["t"])
            if self.text_events is not None:
                self.text_events.append(data)

    def _source_event(self, data: bytes, now: float) -> None:
        """An event of a source other than the first: a token, or that source's `done`."""
        envelope = json.loads(data)
        inner = envelope.get("event")
        if inner is None:
            self.events += 1
            if self._latency:
                self.latencies.append(now - envelope["data"]["t"])
        elif inner == "done":
            self.source_ends += 1
        else:
            raise StreamBrokenError(f"{self.label}: a source ended badly: {data[:300]!r}")

    @property
    def text(self) -> str:
        """The text events, decoded and joined (for a stream read as `text`)."""
        return "".join(json.loads(data) for data in self.text_events or ())

    def _finish(self) -> None:
        if self._tokens is not None and self.text_events is None and self.events != self._tokens:
            msg = f"{self.label}: {self.events} events, expected {self._tokens}"
            self._fail(StreamBrokenError(msg))
            return
        if self.sources > 1 and self.source_ends != self.sources:
            msg = f"{self.label}: {self.source_ends} sources ended, expected {self.sources}"
            self._fail(StreamBrokenError(msg))
            return
        self.ended_at = time.perf_counter()
        self.finished.set_result(None)

    def _fail(self, exc: StreamBrokenError) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc)
        if not self.first_event.done():
            self.first_event.set_exception(exc)
            self.first_event.exception()  # reported once, through `finished`


async def open_stream(
    port: int,
    chat: str,
    *,
    start: bool = True,
    after: str | None = None,
    first_seq: int = 1,
    tokens: int | None = None,
    latency: bool = False,
    text: bool = False,
    sources: int | None = None,
) -> SSEStream:
    """Start chat's stream (`POST /chat/{chat}`) or read it (`GET .../stream`); with
    `sources`, a stream of `tokens` tokens written by that many sources of one generation.

    Returns once the request is sent; the stream is read in the background. Its
    clock (`started_at`) starts before the connection is made, as a browser's would.
    """
    stream = SSEStream(port, chat, first_seq, tokens, latency, text)
    stream.sources = sources or 1
    stream.started_at = time.perf_counter()
    if start:
        query = "" if sources is None else f"?sources={sources}&tokens={tokens}"
        await stream.connect("POST", f"/chat/{chat}{query}", None)
    else:
        stream.last_id = after
        await stream.connect("GET", f"/chat/{chat}/stream", after)
    return stream


async def request(port: int, method: str, path: str) -> None:
    """A plain request (not a stream); raises unless the answer is 2xx."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n"
    writer.write(f"{head}Connection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    status = int(response.split(b" ", 2)[1])
    if not 200 <= status < 300:
        raise StreamBrokenError(f"{method} {path}: HTTP {status}: {response[-300:]!r}")
