"""Resume cursors: `<generation>:<seq>`, the SSE `id` of every event.

Parsing is strict. A cursor that does not parse is the client's bug, and
answering it with a full replay would hide that bug behind duplicated output.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from ._errors import InvalidCursorError

_CURSOR = re.compile(r"([A-Za-z0-9_-]{1,64}):(0|[1-9][0-9]{0,17})")


def new_generation() -> str:
    """An unguessable generation id (128 random bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Cursor:
    generation: str
    seq: int

    def __str__(self) -> str:
        return f"{self.generation}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.fullmatch(text)
        if match is None:
            shown = text if len(text) <= 100 else text[:100] + "..."
            raise InvalidCursorError(
                f"malformed cursor {shown!r}: expected '<generation>:<seq>' as sent in an event id"
            )
        return cls(match[1], int(match[2]))


def coerce_cursor(after: str | Cursor | None) -> Cursor | None:
    if after is None or isinstance(after, Cursor):
        return after
    return Cursor.parse(after)
