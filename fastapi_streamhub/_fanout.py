"""Local fan-out: how notifications reach every listener of this process.

Two routes, one per kind of producer:

- A producer in this process hands each stored batch straight to its local
  listeners (persist-before-deliver holds: it delivers after the write returns).
  Those listeners need no Pub/Sub at all.
- Anything else comes from the backend: one watch per key and kind, shared by
  every listener of the key. Watches of different keys proceed concurrently;
  a listener joining a watch still being set up waits for it.

A notification is handed over by a plain call: listeners only enqueue, so one
slow reader never delays the others or the producer. `tick()` tells every
listener that a check interval passed, so idle readers can look for a lost
producer without one timer per wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import anyio

from .backends._base import Backend, ChannelKind, Control, EventBatch, Notification


class Tick:
    """The marker `tick()` sends: a check interval has passed."""


TICK: Final = Tick()

Listener = Callable[[Notification | Tick | None], None]
"""Called with each notification; None means "some may have been lost: catch up"."""

Slot = tuple[str, ChannelKind]


class Fanout:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._listeners: dict[Slot, set[Listener]] = {}
        self._pending: dict[Slot, anyio.Event] = {}
        self._local: dict[str, tuple[str, set[Listener]]] = {}

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
        if not self._listeners[slot]:
            del self._listeners[slot]
            with anyio.CancelScope(shield=True):
                await self._backend.unwatch(key, kind)

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

    async def follow(self, key: str, generation: str, listener: Listener) -> None:
        """Deliver the events of `generation`: straight from a local producer, or via storage."""
        if not self.follow_local(key, generation, listener):
            await self.add(key, "events", listener)

    def follow_local(self, key: str, generation: str, listener: Listener) -> bool:
        """Follow the local producer of `generation`, if this process runs it."""
        local = self._local.get(key)
        if local is None or local[0] != generation:
            return False
        local[1].add(listener)
        return True

    async def unfollow(self, key: str, listener: Listener) -> None:
        local = self._local.get(key)
        if local is not None and listener in local[1]:
            local[1].discard(listener)
        else:
            await self.remove(key, "events", listener)

    def open_local(self, key: str, generation: str) -> None:
        self._local[key] = (generation, set())

    def deliver_local(self, key: str, generation: str, note: Notification) -> None:
        local = self._local.get(key)
        if local is not None and local[0] == generation:
            for listener in tuple(local[1]):
                listener(note)

    def close_local(self, key: str, generation: str) -> None:
        """The local producer stopped: its listeners read whatever else ended the run."""
        local = self._local.get(key)
        if local is not None and local[0] == generation:
            del self._local[key]
            for listener in local[1]:
                listener(None)

    def dispatch(self, key: str, note: Notification) -> None:
        kind: ChannelKind = "events" if isinstance(note, EventBatch) else "control"
        for listener in tuple(self._listeners.get((key, kind), ())):
            listener(note)

    def dispatch_local_error(self, key: str, generation: str) -> None:
        lost = Control("lost", generation)
        self.deliver_local(key, generation, lost)
        for listener in tuple(self._listeners.get((key, "events"), ())):
            listener(lost)

    def resync(self) -> None:
        self._broadcast(None)

    def tick(self) -> None:
        self._broadcast(TICK)

    def _broadcast(self, note: Tick | None) -> None:
        for listeners in (*self._listeners.values(), *(ls for _, ls in self._local.values())):
            for listener in tuple(listeners):
                listener(note)
