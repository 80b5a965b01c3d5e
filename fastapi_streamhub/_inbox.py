"""Messages to a running generation, delivered to its producer wherever it runs.

Anyone may post to a generation's inbox (`backend.post`): storage checks that it
runs, keeps the message, and signals the owner on the session's control channel.
The owner reads its inbox after the id it read last, so each message reaches it
once per generation, in the order storage accepted them. A signal can be lost (the
Pub/Sub connection dropped, the owner was away from storage), so the owner also
reads when it starts (messages posted before it watched), after every Pub/Sub
resync, and on a timer at the pace of lease renewals: one call per hash slot for
every producer of the process.

Each kind of message has one handler on the producer (`producer.inbox.on(kind, ...)`);
messages of a kind nobody handles yet wait for its handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from ._config import HubConfig
from ._errors import (
    BackendUnavailableError,
    InboxFullError,
    NotRunningError,
    SessionNotFoundError,
)
from ._logs import about
from .backends._base import Backend, InboxEntry, InboxRead, Posted
from .backends._memory_inbox import entry_order

logger = logging.getLogger("fastapi_streamhub")

INBOX_PAGE = 100
"""Messages read per inbox per call; a full page is followed by another read at once."""

MAX_INBOX_MESSAGES = 1000
"""Messages that may wait for one generation's owner to read them: a flood of posts to
an owner that is behind (or stuck) is refused, not stored."""


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message, as its handler receives it: `payload` is the text that was posted."""

    id: str
    kind: str
    payload: str
    source: str


Handler = Callable[[InboxMessage], None]
Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]


async def post(backend: Backend, key: str, *, kind: str, payload: str, source: str) -> Posted:
    """Post a message to the running generation of `key`; returns its id and generation.

    Raises:
        SessionNotFoundError: no session under `key`.
        NotRunningError: its generation has ended (or its producer is lost).
        InboxFullError: `MAX_INBOX_MESSAGES` messages wait for the owner to read them.
        BackendUnavailableError: storage did not answer.
    """
    outcome = await backend.post(
        key, kind=kind, payload=payload, source=source, max_entries=MAX_INBOX_MESSAGES
    )
    if outcome == "not_found":
        raise SessionNotFoundError(key)
    if outcome == "not_running":
        raise NotRunningError(key)
    if outcome == "full":
        raise InboxFullError(key, MAX_INBOX_MESSAGES)
    return outcome


class Inbox:
    """One generation's inbox as its owner reads it: where it stands, who handles what."""

    def __init__(self, key: str, generation: str) -> None:
        self.key = key
        self.generation = generation
        self.last_id = ""
        """The id of the last message delivered; the next read starts after it."""
        self._handlers: dict[str, Handler] = {}
        self._waiting: dict[str, list[InboxMessage]] = {}
        self._notify: Callable[[Inbox], None] | None = None

    def on(self, kind: str, handler: Handler) -> None:
        """Hand every message of `kind` to `handler` (a plain call, in order; it should
        only enqueue). Messages of `kind` that arrived before are handed over now."""
        self._handlers[kind] = handler
        for message in self._waiting.pop(kind, []):
            self._call(handler, message)

    def notify(self) -> None:
        """Storage says a message was posted: read soon."""
        if self._notify is not None:
            self._notify(self)

    def _call(self, handler: Handler, message: InboxMessage) -> None:
        try:
            handler(message)
        except Exception:
            logger.exception(
                "stream %r (generation %s): an inbox handler failed on a %r message; "
                "it is not retried",
                self.key,
                self.generation,
                message.kind,
                extra=about(self.key, self.generation),
            )

    def _read(self) -> InboxRead:
        return InboxRead(self.key, self.generation, self.last_id)

    def _deliver(self, entries: Sequence[InboxEntry]) -> None:
        """Hand over the entries newer than the last delivered (reads may overlap)."""
        last = entry_order(self.last_id)
        for entry in entries:
            order = entry_order(entry.id)
            if order <= last:
                continue
            last, self.last_id = order, entry.id
            message = InboxMessage(entry.id, entry.kind, entry.payload, entry.source)
            handler = self._handlers.get(entry.kind)
            if handler is None:
                self._waiting.setdefault(entry.kind, []).append(message)
            else:
                self._call(handler, message)


class InboxReader:
    """Reads the inboxes of every producer of the process: on a signal, a resync, a timer."""

    def __init__(self, backend: Backend, config: HubConfig) -> None:
        self._backend = backend
        self._config = config
        self._inboxes: set[Inbox] = set()
        self._due: set[Inbox] = set()
        self._spawn: Spawn | None = None
        self._scheduled = False

    def start(self, spawn: Spawn) -> None:
        """Read with tasks from `spawn` from now on (a read scheduled before a restart of
        the hub was cancelled with it)."""
        self._spawn = spawn
        self._scheduled = False

    def add(self, inbox: Inbox) -> None:
        """Read `inbox` from now on, starting with what was posted before."""
        inbox._notify = self.read_soon
        self._inboxes.add(inbox)

    def discard(self, inbox: Inbox) -> None:
        inbox._notify = None
        self._inboxes.discard(inbox)
        self._due.discard(inbox)

    def read_soon(self, inbox: Inbox) -> None:
        """Read `inbox`; reads asked for together share one call."""
        if inbox not in self._inboxes:
            return
        self._due.add(inbox)
        if not self._scheduled and self._spawn is not None:
            self._scheduled = True
            self._spawn("inbox read", self._read_due)

    def resync(self) -> None:
        """Signals may have been lost: read every inbox."""
        for inbox in self._inboxes:
            self.read_soon(inbox)

    async def _read_due(self) -> None:
        await anyio.lowlevel.checkpoint()
        self._scheduled = False
        due, self._due = list(self._due), set()
        try:
            await self.read(due)
        except BackendUnavailableError as exc:
            logger.warning("%d inboxes not read (read again next round): %s", len(due), exc)

    async def run(self) -> None:
        """Read every inbox at the pace of lease renewals: what a lost signal left behind."""
        while True:
            await anyio.sleep(self._config.renew_every_s)
            try:
                await self.read(self._inboxes)
            except BackendUnavailableError as exc:
                logger.warning("inboxes not read this round: %s", exc)

    async def read(self, inboxes: Iterable[Inbox]) -> None:
        """Read `inboxes` until none has more, and deliver what they hold."""
        pending = list(inboxes)
        while pending:
            pages = await self._backend.take([i._read() for i in pending], limit=INBOX_PAGE)
            more = []
            for inbox, entries in zip(pending, pages, strict=True):
                if entries:
                    inbox._deliver(entries)
                    if len(entries) == INBOX_PAGE and inbox in self._inboxes:
                        more.append(inbox)
            pending = more
