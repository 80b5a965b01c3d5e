"""The memory backend's inbox: messages to a running generation, kept with its session.

As `lua/inbox_post.lua` and `lua/inbox_take.lua` have it: a message is accepted only
while the generation runs (its producer's lease not lapsed), ids are `<n>-0` in the
order of acceptance, a read drops what its owner read before (so `max_entries` bounds
the messages not read yet), and a new generation starts with an empty inbox.
"""

from __future__ import annotations

import time

from ._base import InboxEntry, InboxRead, Posted, PostOutcome
from ._memory_session import Session


def entry_order(entry_id: str) -> tuple[int, int]:
    """The order of an inbox id (`<ms>-<n>` on Redis, `<n>-0` here); '' comes first."""
    if not entry_id:
        return (0, 0)
    first, _, second = entry_id.partition("-")
    return (int(first), int(second or 0))


def post(
    session: Session | None, *, kind: str, payload: str, source: str, max_entries: int
) -> PostOutcome:
    if session is None:
        return "not_found"
    if session.status != "active" or session.lease_until <= time.monotonic():
        return "not_running"
    if len(session.inbox) >= max_entries:
        return "full"
    session.posted += 1
    entry = InboxEntry(f"{session.posted}-0", kind, payload, source)
    session.inbox.append(entry)
    return Posted(entry.id, session.generation)


def take(session: Session | None, read: InboxRead, limit: int) -> list[InboxEntry] | None:
    """The entries after `read.after`; those up to it, read already, are dropped."""
    if session is None or session.generation != read.generation:
        return None
    after = entry_order(read.after)
    session.inbox = [e for e in session.inbox if entry_order(e.id) > after]
    return session.inbox[:limit]
