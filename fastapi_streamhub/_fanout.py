"""Local fan-out: one backend watch per key and kind, shared by every local listener.

A notification is handed to each listener of its key by a plain call: listeners
only enqueue, so one slow reader never delays the others or the producer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import anyio

from .backends._base import Backend, ChannelKind, Control, EventBatch, Notification

Listener = Callable[[Notification | None], None]
"""Called with each notification; None means "some may have been lost: catch up"."""


class Fanout:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._listeners: dict[tuple[str, ChannelKind], set[Listener]] = defaultdict(set)
        self._lock = anyio.Lock()

    async def add(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        """Register `listener`; returns once the backend delivers the key's notifications."""
        async with self._lock:
            listeners = self._listeners[(key, kind)]
            first = not listeners
            listeners.add(listener)
            if first:
                try:
                    await self._backend.watch(key, kind)
                except BaseException:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listeners[(key, kind)]
                    raise

    async def remove(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        async with self._lock:
            listeners = self._listeners.get((key, kind))
            if listeners is None or listener not in listeners:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[(key, kind)]
                with anyio.CancelScope(shield=True):
                    await self._backend.unwatch(key, kind)

    def dispatch(self, key: str, note: Notification) -> None:
        kind: ChannelKind = "events" if isinstance(note, EventBatch) else "control"
        for listener in tuple(self._listeners.get((key, kind), ())):
            listener(note)

    def dispatch_local_error(self, key: str, generation: str) -> None:
        for listener in tuple(self._listeners.get((key, "events"), ())):
            listener(Control("lost", generation))

    def resync(self) -> None:
        for listeners in tuple(self._listeners.values()):
            for listener in tuple(listeners):
                listener(None)

    def count(self, key: str, kind: ChannelKind) -> int:
        return len(self._listeners.get((key, kind), ()))
