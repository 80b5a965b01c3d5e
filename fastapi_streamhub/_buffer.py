"""A producer's events on their way to storage: buffered, in flight, and the stored tail.

Writes take events from the front of the buffer; a write storage refused for now
goes back to the front, so a producer's events stay in order whatever fails. The
last stored events are kept (`failover_tail_events`): a failover to a replica that
had not received them yet loses them from storage, and they are written again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ._events import StreamEvent


class EventBuffer:
    __slots__ = ("_tail", "pending", "stored_seq")

    def __init__(self, *, tail: int) -> None:
        self.pending: list[StreamEvent] = []
        self.stored_seq = 0
        self._tail: deque[StreamEvent] = deque(maxlen=tail)

    def take(self, max_events: int, max_chars: int) -> list[StreamEvent]:
        """Events for one write from the front: at most `max_events`, and no more than
        `max_chars` of data unless that would leave the write empty."""
        pending = self.pending
        count = min(len(pending), max_events)
        size = 0
        for index in range(count):
            size += len(pending[index].data)
            if size > max_chars and index > 0:
                count = index
                break
        if count == len(pending):
            batch, self.pending = pending, []
        else:
            batch, self.pending = pending[:count], pending[count:]
        return batch

    def put_back(self, events: Sequence[StreamEvent]) -> None:
        """A write that did not go in returns to the front, to be retried."""
        self.pending[:0] = events

    def stored(self, events: Sequence[StreamEvent]) -> None:
        self._tail.extend(events)
        self.stored_seq = events[-1].seq

    def rewrite_after(self, last_seq: int, write: Sequence[StreamEvent]) -> bool:
        """Storage has only up to `last_seq`: queue the lost stored events and `write`
        again in front; False if the tail kept does not reach back that far."""
        tail = self._tail
        if not tail or tail[0].seq > last_seq + 1:
            return False
        lost = [event for event in tail if event.seq > last_seq]
        self.put_back([*lost, *write])
        self.stored_seq = last_seq
        return True
