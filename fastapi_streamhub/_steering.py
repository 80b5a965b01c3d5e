"""Steering: messages from clients to the generation they are watching, while it runs.

A message is posted to the generation's inbox (`_inbox.py`), so it reaches the
producer wherever it runs, once, in the order storage accepted it, even if it was
sent before the generator first looked. When the producer takes it, it records it
in the stream as a `steer` event, so every reader, live or replaying, sees what the
answer was steered by and where; then the generator gets it from
`current_producer().messages()` or `take_messages()`. A message sent once the
generation has ended is refused: it is never kept for the next one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from ._config import HubConfig
from ._errors import (
    BackendUnavailableError,
    InboxFullError,
    MessageTooLargeError,
    NotRunningError,
    SessionNotFoundError,
)
from ._inbox import InboxMessage, post
from ._logs import about
from ._observe import SteerOutcome
from .backends._base import Backend

logger = logging.getLogger("fastapi_streamhub")

STEER = "steer"
"""The inbox kind of steering messages, and the name of their event in the stream."""

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class SteeringMessage:
    """A steering message as the generator receives it: `data` is the JSON value sent."""

    id: str
    data: Any
    source: str


@dataclass(frozen=True, slots=True)
class Steered:
    """A steering message accepted for the running `generation` of `key`, under `id`."""

    key: str
    id: str
    generation: str


def encode_message(message: object, max_bytes: int) -> str:
    """The message as compact JSON.

    Raises:
        TypeError: `message` cannot be encoded as JSON.
        MessageTooLargeError: it takes more than `max_bytes`.
    """
    try:
        text = _dumps(message)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a steering message must be JSON-serialisable: {exc}") from None
    if len(text.encode("utf-8")) > max_bytes:
        raise MessageTooLargeError(max_bytes)
    return text


_REFUSALS: tuple[tuple[type[Exception], SteerOutcome], ...] = (
    (MessageTooLargeError, "too_large"),
    (TypeError, "invalid"),
    (SessionNotFoundError, "not_found"),
    (NotRunningError, "not_running"),
    (InboxFullError, "full"),
    (BackendUnavailableError, "unavailable"),
)


async def steer(
    backend: Backend, config: HubConfig, key: str, message: object, source: str
) -> Steered:
    observer = config.observer
    try:
        payload = encode_message(message, config.max_message_bytes)
        posted = await post(backend, key, kind=STEER, payload=payload, source=source)
    except Exception as exc:
        if observer is not None:
            for error, outcome in _REFUSALS:
                if isinstance(exc, error):
                    observer.steer_sent(key, outcome)
                    break
        raise
    if observer is not None:
        observer.steer_sent(key, "accepted")
    return Steered(key, posted.id, posted.generation)


def event_data(message: InboxMessage) -> str:
    """The data of the message's `steer` event: `{"id", "source", "message"}`."""
    head = f'{{"id":{_dumps(message.id)},"source":{_dumps(message.source)}'
    return f'{head},"message":{message.payload}}}'


class Steering:
    """One generation's steering messages, between its inbox and its generator."""

    def __init__(self, key: str, generation: str) -> None:
        self._key = key
        self._generation = generation
        self._queue: list[SteeringMessage] = []
        self._arrived = anyio.Event()
        self._closed = False

    def parse(self, message: InboxMessage) -> SteeringMessage | None:
        try:
            return SteeringMessage(message.id, json.loads(message.payload), message.source)
        except ValueError:
            logger.error(
                "stream %r (generation %s): steering message %s is not JSON; skipped",
                self._key,
                self._generation,
                message.id,
                extra=about(self._key, self._generation),
            )
            return None

    def put(self, message: SteeringMessage) -> None:
        self._queue.append(message)
        self._arrived.set()

    def close(self) -> None:
        """The generation stopped: `messages()` ends once it has handed over the rest."""
        self._closed = True
        self._arrived.set()

    def take(self) -> list[SteeringMessage]:
        taken, self._queue = self._queue, []
        return taken

    async def messages(self) -> AsyncIterator[SteeringMessage]:
        while True:
            for message in self.take():
                yield message
            if self._closed:
                return
            if not self._queue:
                self._arrived = anyio.Event()
                await self._arrived.wait()
