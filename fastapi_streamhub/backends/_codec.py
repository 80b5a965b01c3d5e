"""The text of Pub/Sub notifications: newline-separated fields, parsed with one split.

`E\\n<generation>\\n<first seq>\\n<name>\\n<data>...` carries appended events (a name
of '' is an unnamed event); `C\\n<kind>\\n<generation>` a control message. Neither a
generation, an event name nor compact JSON can contain a raw newline, so no
escaping is needed. The events travel inside the notification, which spares
every subscribing process a read per event.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._events import StreamEvent
from ._base import Control, EventBatch, Notification


def encode_events(generation: str, events: Sequence[StreamEvent]) -> str:
    parts = ["E", generation, str(events[0].seq)]
    for event in events:
        parts.append(event.event or "")
        parts.append(event.data)
    return "\n".join(parts)


def decode(payload: str) -> Notification | None:
    """The notification in `payload`, or None for text this library did not write."""
    parts = payload.split("\n")
    if parts[0] == "E" and len(parts) >= 5 and len(parts) % 2 == 1:
        generation, seq = parts[1], int(parts[2])
        events = [
            StreamEvent(generation, seq + i, parts[3 + 2 * i] or None, parts[4 + 2 * i])
            for i in range((len(parts) - 3) // 2)
        ]
        return EventBatch(events)
    if parts[0] == "C" and len(parts) == 3 and parts[1] in ("cancel", "stopped"):
        return Control(parts[1], parts[2])  # type: ignore[arg-type]
    return None
