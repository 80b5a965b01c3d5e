"""Bytes to events, cheaply: HTTP/1.1 chunked framing, then SSE lines.

Written for the load generator's speed (bytes methods, no per-character work)
but to the letter of the SSE spec: lines end in CRLF, LF or CR, one leading
space after the colon is dropped, and an event is dispatched on a blank line.
"""

from __future__ import annotations

from collections.abc import Callable


class SSEParser:
    """Turns body bytes into `sink(event, id, data, now)` calls, keeping partial lines."""

    def __init__(self, sink: Callable[[bytes, bytes, bytes, float], None]) -> None:
        self._sink = sink
        self._rest = b""
        self._event = b""
        self._id = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes, now: float) -> None:
        buf = self._rest + chunk
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # may be the first half of a CRLF
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._rest = lines.pop() + held
        for line in lines:
            if line:
                self._field(line)
            elif self._data:
                self._sink(self._event, self._id, b"\n".join(self._data), now)
                self._event, self._data = b"", []
            else:
                self._event = b""

    def close(self, now: float) -> None:
        """The body has ended: a CR held back as half of a CRLF was a line end after all."""
        if self._rest.endswith(b"\r"):
            self.feed(b"\n", now)

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"id":
            self._id = value
        elif name == b"event":
            self._event = value


class BodyDecoder:
    """Undoes HTTP/1.1 chunked framing (or passes a close-delimited body through)."""

    def __init__(self, chunked: bool, out: Callable[[bytes], None]) -> None:
        self.chunked = chunked
        self.ended = False
        self._out = out
        self._buf = b""
        self._left = 0

    def feed(self, data: bytes) -> None:
        if not self.chunked:
            self._out(data)
            return
        buf, pos = self._buf + data, 0
        while not self.ended:
            if self._left:
                piece = buf[pos : pos + self._left]
                if not piece:
                    break
                self._out(piece)
                pos += len(piece)
                self._left -= len(piece)
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size_line, pos = buf[pos:eol], eol + 2
            if size_line:  # an empty line is the CRLF that closes a chunk
                self._left = int(size_line.split(b";")[0], 16)
                self.ended = self._left == 0
        self._buf = buf[pos:]
