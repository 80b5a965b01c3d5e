"""Bounding sends to clients that stopped reading, for a clock read per send.

A client that stops reading (a frozen tab, a stalled proxy) blocks the send once the
socket buffers are full, and a blocked send would hold its response forever. A
timed cancel scope around every send (sse-starlette's `send_timeout`) costs about
7 µs per send, paid per token by every reader. Instead each response notes when its
current send began, and one supervised task of the hub looks at all of them a few
times per timeout: a send older than `send_timeout_s` has its whole response
cancelled. The response then ends; its client resumes from its last event id.
"""

from __future__ import annotations

import time

import anyio


class GuardedSend:
    """One response's send in flight: `since` is when it began, None when idle."""

    __slots__ = ("scope", "since", "timed_out")

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.since: float | None = None
        self.timed_out = False


class SendGuard:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._sends: set[GuardedSend] = set()

    def watch(self, scope: anyio.CancelScope) -> GuardedSend:
        guarded = GuardedSend(scope)
        self._sends.add(guarded)
        return guarded

    def forget(self, guarded: GuardedSend) -> None:
        self._sends.discard(guarded)

    async def run(self) -> None:
        interval = min(max(self.timeout_s / 4, 0.05), 1.0)
        while True:
            await anyio.sleep(interval)
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        for guarded in tuple(self._sends):
            since = guarded.since
            if since is not None and now - since > self.timeout_s:
                guarded.timed_out = True
                guarded.scope.cancel()
                self._sends.discard(guarded)
