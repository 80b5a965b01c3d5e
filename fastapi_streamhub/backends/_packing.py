"""Compaction's layout: a finished generation's events packed into a few entries.

Consecutive text chunks (unnamed events whose data is a JSON string) are merged into a
**text run**: their JSON strings concatenated without the inner quotes, which is exactly
the JSON encoding of the concatenated text, since JSON escapes each character on its
own. Every other event (named, or a chunk that is not a string) is kept whole, in
place, in a **block** of consecutive such events. A run remembers where each of its
tokens ends, so a cursor pointing inside it still resumes exactly: the reader gets one
event with the rest of the run's text and the id of the run's last token.

Entries are closed when they would exceed `ENTRY_BYTES` (one 4 KiB allocation in Redis,
so the allocator wastes nothing on them). Compaction runs in steps of at most
`CHUNK_EVENTS` raw events, so it never holds Redis long; a step keeps only the entries
it closed, and the next one starts after them, so steps do not cut entries short (only
a step that closed none closes its last one, so that each step gets somewhere). The
Redis scripts (`lua/compact.lua`, `lua/read.lua`) implement the same rules byte for
byte; this module is the reference, used by the memory backend and checked against Lua
by the tests.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from .._events import StreamEvent

ENTRY_BYTES = 4090
"""The most bytes one entry takes (Redis adds 6 bytes of string header: 4 KiB)."""

CHUNK_EVENTS = 1024
"""Raw events packed per compaction step; entries never span two steps."""


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def nibbles(length: int) -> int:
    """Half-bytes that encode one token length: one for 1 to 15, else a zero, a digit
    count and the hexadecimal digits."""
    if 1 <= length <= 15:
        return 1
    return 2 + len(f"{length:x}")


def run_bytes(nibble_count: int, data_bytes: int) -> int:
    """The stored size of a run: `T<bounds bytes>:<bounds><text>`."""
    bounds = (nibble_count + 1) // 2
    return 2 + len(str(bounds)) + bounds + data_bytes


@dataclass(slots=True)
class TextRun:
    """Text chunks `first..last` merged; `ends[i]` is where token `first + i` ends in
    `text` (characters), for every token but the last."""

    first: int
    last: int
    text: str
    ends: array[int]


@dataclass(slots=True)
class Block:
    """Events `first..last` kept whole: (name, data) each."""

    first: int
    last: int
    events: list[tuple[str | None, str]]


Entry = TextRun | Block


def is_text(event: StreamEvent) -> bool:
    return event.event is None and event.data.startswith('"')


class _Packer:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.entries: list[Entry] = []
        self._tokens: list[str] = []
        self._events: list[tuple[str | None, str]] = []
        self._first = 0
        self._size = 0
        self._nibbles = 0
        self._last_len = 0

    def add(self, event: StreamEvent) -> None:
        if is_text(event):
            self._add_token(event)
        else:
            self._add_event(event)

    def _add_token(self, event: StreamEvent) -> None:
        inner = event.data[1:-1]
        length = _size(inner)
        if self._events:
            self.close(event.seq - 1)
        if self._tokens:
            grown = self._nibbles + nibbles(self._last_len)
            if run_bytes(grown, self._size + length) <= self.cap:
                self._tokens.append(inner)
                self._nibbles, self._size, self._last_len = grown, self._size + length, length
                return
            self.close(event.seq - 1)
        self._first, self._tokens = event.seq, [inner]
        self._nibbles, self._size, self._last_len = 0, length, length

    def _add_event(self, event: StreamEvent) -> None:
        piece = _size(event.event or "") + 1 + _size(event.data)
        if self._tokens:
            self.close(event.seq - 1)
        if self._events:
            if self._size + 1 + piece <= self.cap:
                self._events.append((event.event, event.data))
                self._size += 1 + piece
                return
            self.close(event.seq - 1)
        self._first, self._events, self._size = event.seq, [(event.event, event.data)], 1 + piece

    def close(self, last: int) -> None:
        if self._tokens:
            ends = array("q")
            end = 0
            for token in self._tokens[:-1]:
                end += len(token)
                ends.append(end)
            self.entries.append(TextRun(self._first, last, "".join(self._tokens), ends))
            self._tokens = []
        elif self._events:
            self.entries.append(Block(self._first, last, self._events))
            self._events = []


def pack(
    events: Sequence[StreamEvent], *, chunk: int = CHUNK_EVENTS, cap: int = ENTRY_BYTES
) -> list[Entry]:
    """The entries of a generation's events (seqs from 1, without gaps), step by step."""
    entries: list[Entry] = []
    start = 0
    while start < len(events):
        end = min(start + chunk, len(events))
        packer = _Packer(cap)
        for event in events[start:end]:
            packer.add(event)
        if end == len(events) or not packer.entries:
            packer.close(events[end - 1].seq)
        entries += packer.entries
        start = entries[-1].last
    return entries


def read_packed(
    entries: Sequence[Entry], generation: str, *, after: int, limit: int
) -> list[StreamEvent]:
    """Up to `limit` events after seq `after`: a run the cursor points inside gives the
    rest of its text, with the id of its last token."""
    found: list[StreamEvent] = []
    index = bisect.bisect_right([entry.last for entry in entries], after)
    for entry in entries[index:]:
        if len(found) >= limit:
            break
        if isinstance(entry, TextRun):
            start = 0 if after < entry.first else entry.ends[after - entry.first]
            found.append(StreamEvent(generation, entry.last, None, f'"{entry.text[start:]}"'))
            continue
        for offset, (name, data) in enumerate(entry.events):
            seq = entry.first + offset
            if seq > after and len(found) < limit:
                found.append(StreamEvent(generation, seq, name, data))
    return found
