"""Local fan-out: how notifications reach every listener of this process.

Two routes, one per kind of producer:

- A producer in this process hands each stored batch straight to the listeners of
  its generation (persist-before-deliver holds: it delivers after the write
  returns). Those listeners need no Pub/Sub at all.
- Anything else comes from the backend: one watch per key and kind, shared by
  every listener of the key. A listener joining a watch still being set up waits
  for it, and fails with it.

A notification is handed over by a plain call: listeners only enqueue, so one
slow reader never delays the others or the producer. Each call is guarded: a
listener that raises is logged, and the others still get the notification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from ._errors import BackendUnavailableError
from .backends._base import Backend, ChannelKind, Control, Notification, SessionState

logger = logging.getLogger("fastapi_streamhub")


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of an idle check of the key: its state, or `None` when it is gone;
    `reachable` is False when storage did not answer the check."""

    state: SessionState | None
    reachable: bool = True


Signal = Notification | Checked | None
"""What a listener receives; None means "some notifications may have been lost"."""

Listener = Callable[[Signal], None]

Slot = tuple[str, ChannelKind]


@dataclass(slots=True)
class _Watch:
    listeners: set[Listener] = field(default_factory=set)
    ready: anyio.Event = field(default_factory=anyio.Event)
    failure: BaseException | None = None
    heard: bool = False


def _call(listener: Listener, signal: Signal) -> None:
    try:
        listener(signal)
    except Exception:
        logger.exception("a stream listener failed on %r; the others go on", type(signal))


class Fanout:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._watches: dict[Slot, _Watch] = {}
        self._local: dict[tuple[str, str], set[Listener]] = {}
        self.on_follow: Callable[[str], None] | None = None
        """Told each time a reader starts following a key (abandonment counts readers)."""

    async def add(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        """Register `listener`; returns once the backend delivers the key's notifications.

        Raises:
            BackendUnavailableError: the backend could not watch the key.
        """
        slot = (key, kind)
        watch = self._watches.get(slot)
        if watch is None:
            await self._start_watch(slot, listener)
            return
        watch.listeners.add(listener)
        if watch.ready.is_set():
            return
        try:
            await watch.ready.wait()
        except BaseException:
            await self.remove(key, kind, listener)
            raise
        if watch.failure is None:
            return
        watch.listeners.discard(listener)
        if isinstance(watch.failure, BackendUnavailableError):
            raise BackendUnavailableError(str(watch.failure)) from watch.failure
        await self.add(key, kind, listener)

    async def _start_watch(self, slot: Slot, listener: Listener) -> None:
        watch = self._watches[slot] = _Watch(listeners={listener})
        try:
            await self._backend.watch(*slot)
        except BaseException as exc:
            watch.failure = exc
            del self._watches[slot]
            with anyio.CancelScope(shield=True):
                await self._backend.unwatch(*slot)
            raise
        finally:
            watch.ready.set()
        if not watch.listeners:
            await self._stop_watch(slot, watch)

    async def remove(self, key: str, kind: ChannelKind, listener: Listener) -> None:
        slot = (key, kind)
        watch = self._watches.get(slot)
        if watch is None or listener not in watch.listeners:
            return
        watch.listeners.discard(listener)
        if not watch.listeners and watch.ready.is_set():
            await self._stop_watch(slot, watch)

    async def _stop_watch(self, slot: Slot, watch: _Watch) -> None:
        if self._watches.get(slot) is watch:
            del self._watches[slot]
            with anyio.CancelScope(shield=True):
                await self._backend.unwatch(*slot)

    async def follow(self, key: str, generation: str, listener: Listener) -> None:
        """Deliver the events of `generation`: straight from a local producer, or via storage."""
        if not self.follow_local(key, generation, listener):
            await self.add(key, "events", listener)
        if self.on_follow is not None:
            self.on_follow(key)

    def follow_local(self, key: str, generation: str, listener: Listener) -> bool:
        """Follow the local producer of `generation`, if this process runs it."""
        listeners = self._local.get((key, generation))
        if listeners is None:
            return False
        listeners.add(listener)
        return True

    async def unfollow(self, key: str, generation: str, listener: Listener) -> None:
        listeners = self._local.get((key, generation))
        if listeners is not None and listener in listeners:
            listeners.discard(listener)
        else:
            await self.remove(key, "events", listener)

    def open_local(self, key: str, generation: str) -> None:
        self._local[(key, generation)] = set()

    def deliver_local(self, key: str, generation: str, note: Notification) -> None:
        listeners = self._local.get((key, generation))
        if listeners:
            for listener in tuple(listeners):
                _call(listener, note)

    def close_local(self, key: str, generation: str) -> None:
        """The local producer stopped: its listeners read whatever else ended the run."""
        listeners = self._local.pop((key, generation), None)
        for listener in listeners or ():
            _call(listener, None)

    def dispatch(self, key: str, note: Notification) -> None:
        """A notification from the backend, for the listeners of its key."""
        kind: ChannelKind = "control" if isinstance(note, Control) else "events"
        watch = self._watches.get((key, kind))
        if watch is not None:
            watch.heard = True
            for listener in tuple(watch.listeners):
                _call(listener, note)

    def dispatch_local_error(self, key: str, generation: str) -> None:
        lost = Control("lost", generation)
        self.deliver_local(key, generation, lost)
        self.dispatch(key, lost)

    def resync(self) -> None:
        """Notifications may have been lost: every listener of a watch catches up."""
        for watch in tuple(self._watches.values()):
            for listener in tuple(watch.listeners):
                _call(listener, None)

    def idle_keys(self) -> list[str]:
        """Keys followed through storage that heard nothing since the last call."""
        idle = []
        for (key, kind), watch in self._watches.items():
            if kind == "events" and watch.ready.is_set():
                if not watch.heard:
                    idle.append(key)
                watch.heard = False
        return idle

    def deliver_check(self, key: str, checked: Checked) -> None:
        watch = self._watches.get((key, "events"))
        if watch is not None:
            for listener in tuple(watch.listeners):
                _call(listener, checked)

    def read_keys(self) -> list[str]:
        """Keys this process has readers of, through storage or from a local producer."""
        keys = {key for (key, kind), w in self._watches.items() if kind == "events" and w.listeners}
        keys.update(key for (key, _), listeners in self._local.items() if listeners)
        return list(keys)

    def has_local_readers(self, key: str, generation: str) -> bool:
        return bool(self._local.get((key, generation)))

    @property
    def watched(self) -> int:
        return len(self._watches)
