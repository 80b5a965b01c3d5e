"""How the command line prints: Rich tables for a person, JSON for a script.

JSON goes to stdout as one document (`tail`: one line per event); notes and errors go
to stderr, so a pipe only ever sees data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._events import StreamEvent
from .._result import StreamResult
from .._status import CancelResult
from ._inventory import SHOWN_ORDER, SessionRow, Stats

_STYLES = {
    "running": "green",
    "pending": "cyan",
    "lapsed": "yellow",
    "done": "",
    "error": "red",
    "cancelled": "magenta",
}


RULE = "-" * 40
"""Between the summary of a result and its text."""


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def age(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`: short enough for a table column."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def size(count: int) -> str:
    """`512 B`, `12.3 KiB`, `4.0 MiB`."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def sessions_table(rows: Sequence[SessionRow]) -> Table:
    now = time.time()
    table = Table(box=None, header_style="bold", pad_edge=False)
    longest = max((len(row.key) for row in rows), default=3)
    table.add_column("KEY", min_width=min(longest, _KEY_MIN_WIDTH), overflow="fold")
    for column in ("GENERATION", "STATUS", "SOURCES", "EVENTS", "AGE", "OWNER"):
        numeric = column in ("SOURCES", "EVENTS")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            Text(row.key, overflow="fold"),
            row.generation,
            Text(row.status, style=_STYLES[row.status]),
            "-" if row.sources is None else str(row.sources),
            str(row.events),
            age(row.age_s(now)),
            row.owner or "-",
        )
    return table


def pairs_text(pairs: Sequence[tuple[str, str]]) -> str:
    """`name  value` lines, the values aligned: as easy to grep as to read."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in pairs)


def status_pairs(row: SessionRow) -> list[tuple[str, str]]:
    now = time.time()
    pairs = [
        ("key", row.key),
        ("status", row.status),
        ("generation", row.generation),
        ("events", str(row.events)),
        ("bytes", "-" if row.bytes is None else size(row.bytes)),
        ("last event id", row.last_event_id),
        ("sources", "-" if row.sources is None else str(row.sources)),
        *((f"  {source.name}", source.shown) for source in row.source_states or ()),
        ("owner", row.owner or "-"),
        ("started", f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC ({age(row.age_s(now))} ago)"),
    ]
    if row.ended_at is not None:
        pairs.append(("ended", f"{row.ended_at:%Y-%m-%d %H:%M:%S} UTC"))
    if row.end is not None:
        pairs.append(("end", json.dumps(row.end, ensure_ascii=False)))
    pairs += [
        ("compacted", "yes" if row.compacted else "no"),
        ("finish hook", row.finish_hook),
        ("metadata", json.dumps(row.metadata, ensure_ascii=False)),
    ]
    return pairs


def stats_text(stats: Stats) -> str:
    pairs = [("streams", str(stats.streams))]
    pairs += [(f"  {status}", str(stats.by_status[status])) for status in SHOWN_ORDER]
    pairs += [
        ("events stored", str(stats.events)),
        ("bytes stored", size(stats.bytes)),
        ("compacted", str(stats.compacted)),
        ("finish hooks owed", str(stats.finish_hooks_owed)),
        ("instances producing", str(len(stats.instances))),
    ]
    if stats.oldest_running_s is not None:
        pairs.append(("oldest running", age(stats.oldest_running_s)))
    return pairs_text(pairs)


def cancel_json(outcome: CancelResult) -> dict[str, Any]:
    return {
        "key": outcome.key,
        "cancelled": outcome.cancelled,
        "stopped": outcome.stopped,
        "status": outcome.status.status,
        "generation": outcome.status.generation,
        "last_event_id": outcome.status.last_event_id,
    }


def result_json(result: StreamResult) -> dict[str, Any]:
    data = asdict(result)
    data["events"] = [asdict(event) for event in result.events]
    data["started_at"] = result.started_at.isoformat(timespec="milliseconds")
    data["ended_at"] = (
        None if result.ended_at is None else result.ended_at.isoformat(timespec="milliseconds")
    )
    return data


def result_pairs(result: StreamResult) -> list[tuple[str, str]]:
    pairs = [
        ("key", result.key),
        ("status", result.status),
        ("generation", result.generation),
        ("last event id", result.last_event_id),
        ("started", f"{result.started_at:%Y-%m-%d %H:%M:%S} UTC"),
    ]
    if result.ended_at is not None:
        pairs.append(("ended", f"{result.ended_at:%Y-%m-%d %H:%M:%S} UTC"))
    if result.end is not None:
        pairs.append(("end", json.dumps(result.end, ensure_ascii=False)))
    if result.usage is not None:
        pairs.append(("usage", json.dumps(result.usage, ensure_ascii=False)))
    pairs.append(("other events", str(len(result.events))))
    return pairs


def event_json(event: StreamEvent) -> str:
    """One line per event: its id, its name (null for a plain chunk), its data decoded."""
    return json.dumps(
        {"id": event.id, "event": event.event, "data": event.value},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def event_line(event: StreamEvent) -> str:
    return f"{event.id}  {event.event or 'message'}  {event.data}"


_KEY_MIN_WIDTH = 30
"""On a narrow terminal the key keeps this much room; a longer one folds onto more lines."""

_PIPE_WIDTH = 100_000
"""Into a pipe, a row is one line however long its key: `grep` and `awk` read rows."""


def stdout_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console
