"""When to reconnect, and when to give up: bounded by attempts and by time.

Both bounds count from the last event received, so a long stream that loses its
connection now and then is never given up on while it makes progress. The first
reconnection after progress is immediate (a lagged reader, an instance that shut
down: the next try usually works); later ones back off exponentially, with jitter so
that the readers of an instance that died do not all come back at once.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_reconnects: int
    max_reconnect_time_s: float
    backoff_initial_s: float | None
    backoff_max_s: float

    def __post_init__(self) -> None:
        if self.max_reconnects < 0:
            raise ValueError(f"max_reconnects must be 0 or more, got {self.max_reconnects}")
        for name in ("max_reconnect_time_s", "backoff_max_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.backoff_initial_s is not None and self.backoff_initial_s < 0:
            raise ValueError(f"backoff_initial_s must be 0 or more, got {self.backoff_initial_s}")


class Backoff:
    """Counts reconnections since the last progress and says how long to wait before each."""

    def __init__(self, settings: RetrySettings) -> None:
        self._settings = settings
        self.attempts = 0
        self._since: float | None = None

    def progress(self) -> None:
        """An event arrived: the next failure starts a fresh count."""
        self.attempts = 0
        self._since = None

    def next_delay_s(self, *, hint_s: float, retry_after_s: float | None) -> float | None:
        """The wait before the next reconnection, or None once a bound is reached.

        `hint_s` is the server's `retry:` hint, the base of the backoff unless
        `backoff_initial_s` was given; `retry_after_s` is a `Retry-After` to honour.
        """
        settings = self._settings
        now = time.monotonic()
        if self._since is None:
            self._since = now
        self.attempts += 1
        if self.attempts > settings.max_reconnects:
            return None
        delay = 0.0
        if self.attempts > 1:
            base = hint_s if settings.backoff_initial_s is None else settings.backoff_initial_s
            ceiling = min(settings.backoff_max_s, base * 2 ** (self.attempts - 2))
            delay = ceiling * random.uniform(0.5, 1.0)
        delay = max(delay, retry_after_s or 0.0)
        if now + delay - self._since > settings.max_reconnect_time_s:
            return None
        return delay
