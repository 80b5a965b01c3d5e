"""The messages a joined source posts to its generation's inbox (kind `source`).

Newline-separated fields, as the notification codec's: neither a token, an event name
nor compact JSON holds a raw newline, so event data travels exactly as it will be
stored, without a second JSON encoding.

- `J\\n<token>\\n<join id>\\n<lease ms>`: join under the message's source name;
- `E\\n<token>\\n<n>\\n<name>\\n<data>...`: events, in order (a name of '' is a chunk);
- `H\\n<token>\\n<n>`: still here (renews the source's lease, as every message does);
- `X\\n<token>\\n<n>\\n<end>\\n<data>`: the source ends (`done` or `error`).

The token is the source's fence: the owner takes messages only under the token of the
join it accepted, so a source that lost its lease (or a process that joined under the
same name in an earlier generation) cannot write. `n` counts the source's messages from
1: a post retried after a lost reply may be stored twice, and the owner takes each `n`
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

INBOX_KIND: Final = "source"

JoinOp = Literal["J", "E", "H", "X"]


@dataclass(frozen=True, slots=True)
class JoinMessage:
    """One decoded message: `n` is its number (0 for a join), `fields` what follows."""

    op: JoinOp
    token: str
    n: int
    fields: list[str]


def join(token: str, join_id: str, lease_ms: int) -> str:
    return f"J\n{token}\n{join_id}\n{lease_ms}"


def events(token: str, n: int, pairs: Sequence[tuple[str | None, str]]) -> str:
    parts = ["E", token, str(n)]
    for name, data in pairs:
        parts.append(name or "")
        parts.append(data)
    return "\n".join(parts)


def heartbeat(token: str, n: int) -> str:
    return f"H\n{token}\n{n}"


def end(token: str, n: int, event: str, data: str) -> str:
    return f"X\n{token}\n{n}\n{event}\n{data}"


def decode(payload: str) -> JoinMessage | None:
    """The message in `payload`, or None if it is not one this release reads."""
    parts = payload.split("\n")
    if len(parts) < 3:
        return None
    op, token = parts[0], parts[1]
    if op == "J":
        valid = len(parts) == 4 and parts[3].isascii() and parts[3].isdigit()
        return JoinMessage("J", token, 0, parts[2:]) if valid else None
    if not (parts[2].isascii() and parts[2].isdigit()):
        return None
    fields = parts[3:]
    valid = (
        (op == "E" and bool(fields) and len(fields) % 2 == 0)
        or (op == "H" and not fields)
        or (op == "X" and len(fields) == 2 and fields[0] in ("done", "error"))
    )
    return JoinMessage(op, token, int(parts[2]), fields) if valid else None  # type: ignore[arg-type]


def pairs_of(fields: Sequence[str]) -> list[tuple[str | None, str]]:
    return [(fields[i] or None, fields[i + 1]) for i in range(0, len(fields), 2)]
