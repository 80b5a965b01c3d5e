"""The sources that other processes joined, as the generation's owner keeps them.

A joined process posts its events to the generation's inbox (`_join_wire.py`); the
inbox hands them to the owner in the order storage accepted them, and the owner, the
generation's single writer, buffers them like any local event: storage decides the
order, and seqs stay gapless. Each joined source is fenced by the token of its join
and leased on its own: every message renews its lease, and one that lapses (the
process died, or stalled) ends that source alone with `error` (`producer_lost`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import anyio

from ._errors import ProducerStoppedError
from ._events import terminal_data
from ._join_wire import JoinMessage, decode, pairs_of
from ._logs import about

if TYPE_CHECKING:
    from ._inbox import InboxMessage
    from ._producer import Producer

logger = logging.getLogger("fastapi_streamhub")

PRODUCER_LOST: Final = terminal_data(
    message="The source stopped answering.", reason="producer_lost"
)
NOT_JOINED: Final = terminal_data(message="The source did not join in time.", reason="not_joined")
LEASE_TASK: Final = "\njoined leases"
"""The name of the task that ends lapsed sources (no source name holds a newline)."""


class JoinedSources:
    """One generation's joined sources: their tokens and lease deadlines."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._tokens: dict[str, str] = {}
        self._lease_s: dict[str, float] = {}
        self._deadlines: dict[str, float] = {}
        self._taken: dict[str, int] = {}
        self._expected: set[str] = set()
        self._changed = anyio.Event()
        self._watching = False

    def on_message(self, message: InboxMessage) -> None:
        """A plain call from the inbox, in accepted order: buffer, never wait."""
        decoded = decode(message.payload)
        name = message.source
        if decoded is None:
            logger.warning(
                "stream %r (generation %s): a message of source %r this release cannot read",
                self._key,
                self._generation,
                name,
                extra=self._about,
            )
        elif decoded.op == "J":
            self._join(name, decoded)
        elif self._tokens.get(name) != decoded.token or not self._producer._source_running(name):
            logger.warning(
                "stream %r (generation %s): a message of source %r refused: its token is stale",
                self._key,
                self._generation,
                name,
                extra=self._about,
            )
        elif decoded.n > self._taken[name]:
            self._taken[name] = decoded.n
            self._deadlines[name] = anyio.current_time() + self._lease_s[name]
            if decoded.op == "E":
                self._producer._publish_joined(name, pairs_of(decoded.fields))
            elif decoded.op == "X":
                self._forget(name)
                self._producer._end_source(name, decoded.fields[0], decoded.fields[1])

    @property
    def _key(self) -> str:
        return self._producer.key

    @property
    def _generation(self) -> str:
        return self._producer.generation

    @property
    def _about(self) -> dict[str, object]:
        return about(self._producer.key, self._producer.generation)

    def expect(self, name: str, within_s: float) -> None:
        """Keep `name` (already started as a source) for a process that will join as it;
        if none has joined within `within_s`, end it with `error` (`not_joined`)."""
        self._expected.add(name)
        self._deadlines[name] = anyio.current_time() + within_s
        self._watch_leases()

    def _join(self, name: str, message: JoinMessage) -> None:
        join_id, lease_ms = message.fields
        if self._tokens.get(name) == message.token:
            return  # the same join, posted again after a lost reply
        expected = name in self._expected and self._producer._source_running(name)
        try:
            self._producer._join_source(name, join_id, expected=expected)
        except (ValueError, ProducerStoppedError) as exc:
            logger.warning(
                "stream %r (generation %s): the join of source %r was refused: %s",
                self._key,
                self._generation,
                name,
                exc,
                extra=self._about,
            )
            self._answered(name, accepted=False)
            return
        self._answered(name, accepted=True)
        self._expected.discard(name)
        self._tokens[name] = message.token
        self._taken[name] = 0
        self._lease_s[name] = int(lease_ms) / 1000
        self._deadlines[name] = anyio.current_time() + self._lease_s[name]
        self._watch_leases()

    def _answered(self, name: str, *, accepted: bool) -> None:
        if (observer := self._producer._config.observer) is not None:
            observer.join_answered(self._producer, name, accepted)

    def _watch_leases(self) -> None:
        self._changed.set()
        if not self._watching:
            self._watching = True
            self._producer._start_source_task(LEASE_TASK, self._watch)

    def _forget(self, name: str) -> None:
        self._deadlines.pop(name, None)
        self._changed.set()

    def _lapsed(self, name: str) -> None:
        self._forget(name)
        if name in self._expected:
            logger.warning(
                "stream %r (generation %s): no process joined as source %r in time",
                self._key,
                self._generation,
                name,
                extra=self._about,
            )
            self._producer._end_source(name, "error", NOT_JOINED)
        else:
            logger.warning(
                "stream %r (generation %s): source %r lost its lease",
                self._key,
                self._generation,
                name,
                extra=self._about,
            )
            self._producer._end_source(name, "error", PRODUCER_LOST)

    async def _watch(self) -> None:
        """End each joined source whose lease lapsed; return once none is running."""
        try:
            while True:
                now = anyio.current_time()
                for name, deadline in list(self._deadlines.items()):
                    if not self._producer._source_running(name):
                        self._forget(name)
                    elif deadline <= now:
                        self._lapsed(name)
                if not self._deadlines:
                    return
                self._changed = anyio.Event()
                with anyio.move_on_after(min(self._deadlines.values()) - now):
                    await self._changed.wait()
        finally:
            self._watching = False
