"""Local fan-out: one backend watch per key and kind, shared by every local listener.

A notification is handed to each listener of its key by a plain call: listeners
only enqueue, so one slow reader never delays the others or the producer. Watches
of different keys proceed concurrently; listeners joining a watch still being set
up wait for it, so each returns only once delivery is guaranteed.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from .backends._base import Backend, ChannelKind, Control, EventBatch, Notification

Listener = Callable[[Notification | None], None]
"""Called with each notification; None means "some may have been lost: catch up"."""

Slot = tuple[str, ChannelKind]


class Fanout:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._listeners: dict[Slot, set[Listener]] = {}
        self._pending: dict[Slot, anyio.Event] = {}

    async def add(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        """Register `listener`; returns once the backend delivers the key's notifications."""
        slot = (key, kind)
        listeners = self._listeners.get(slot)
        if listeners is not None:
            listeners.add(listener)
            pending = self._pending.get(slot)
            if pending is not None:
                await pending.wait()
                if listener not in self._listeners.get(slot, ()):
                    raise RuntimeError(f"watching {key!r} failed")
            return
        self._listeners[slot] = {listener}
        self._pending[slot] = ready = anyio.Event()
        try:
            await self._backend.watch(key, kind)
        except BaseException:
            del self._listeners[slot]
            raise
        finally:
            del self._pending[slot]
            ready.set()

    async def remove(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        slot = (key, kind)
        listeners = self._listeners.get(slot)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners and slot not in self._pending:
            del self._listeners[slot]
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
