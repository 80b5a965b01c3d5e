"""The text of Pub/Sub notifications: newline-separated fields, parsed with one split.

- `E\\n<generation>\\n<first seq>\\n<name>\\n<data>...`: appended events, carried whole
  (a name of '' is an unnamed event);
- `R\\n<generation>\\n<first seq>\\n<last seq>`: appended events too large to carry;
- `C\\n<kind>\\n<generation>`: a control message (`cancel`, `stopped`, `inbox`).

Neither a generation, an event name nor compact JSON can contain a raw newline, so no
escaping is needed. The events travel inside the notification, which spares every
subscribing process a read per event.

The rule that lets two releases run side by side during a rolling deploy: a message
that does not decode (another release's new kind, or garbage) is never an error. It
decodes to a storage hint, and whoever receives it reads storage instead, which holds
everything a notification could have said. So a release may add kinds freely; it may
change an existing kind's fields only under a new letter.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._events import StreamEvent
from ._base import STORAGE_HINT, Control, EventBatch, Notification

_CONTROL_KINDS = frozenset({"cancel", "stopped", "inbox"})


def encode_events(generation: str, events: Sequence[StreamEvent]) -> str:
    parts = ["E", generation, str(events[0].seq)]
    for event in events:
        parts.append(event.event or "")
        parts.append(event.data)
    return "\n".join(parts)


def decode(payload: str) -> Notification:
    """The notification in `payload`; a storage hint for anything it cannot read."""
    parts = payload.split("\n")
    kind = parts[0]
    if (
        kind == "E"
        and len(parts) >= 5
        and len(parts) % 2 == 1
        and parts[2].isascii()
        and parts[2].isdigit()
    ):
        generation, seq = parts[1], int(parts[2])
        return EventBatch(
            [
                StreamEvent(generation, seq + i, parts[3 + 2 * i] or None, parts[4 + 2 * i])
                for i in range((len(parts) - 3) // 2)
            ]
        )
    if kind == "C" and len(parts) == 3 and parts[1] in _CONTROL_KINDS:
        return Control(parts[1], parts[2])  # type: ignore[arg-type]
    return STORAGE_HINT
