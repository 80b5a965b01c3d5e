"""Cancel from any instance: stored at once, signalled to the owner, confirmed by it.

The `cancelled` event is stored by one script, which also publishes the cancel
signal on the key's control channel; a producer in this process is stopped
directly, without waiting for the signal. With a wait, the caller then waits for
the owner's `stopped` signal of that very generation (or for the local producer),
so a stop that races the next turn never confirms, or cancels, the next turn.
"""

from __future__ import annotations

import anyio

from ._config import HubConfig
from ._events import terminal_data
from ._fanout import Fanout, Signal
from ._local import LocalProducers
from ._producer import Producer
from ._status import CancelResult, producer_stopped, stream_status
from .backends._base import Backend, Control


class StopWatch:
    """Waits for the `stopped` signal of one generation, or for its local producer.

    Signals are recorded by generation from before the cancel is sent, since the
    generation is known only from its answer, and the signal may come first."""

    def __init__(self) -> None:
        self.generation: str | None = None
        self._stopped: set[str] = set()
        self._event = anyio.Event()

    def on_signal(self, signal: Signal) -> None:
        if isinstance(signal, Control) and signal.kind == "stopped":
            self._stopped.add(signal.generation)
            self._event.set()

    async def wait(self, local: Producer | None) -> None:
        if local is not None and local.generation == self.generation:
            await local.wait()
            return
        while self.generation not in self._stopped:
            event = self._event
            await event.wait()
            if event is self._event:
                self._event = anyio.Event()


async def cancel(
    key: str,
    *,
    generation: str | None,
    wait: float | None,
    backend: Backend,
    fanout: Fanout,
    local: LocalProducers,
    config: HubConfig,
) -> CancelResult | None:
    stopped = StopWatch()
    if wait:
        await fanout.add(key, "control", stopped.on_signal)
    try:
        cancelled, state = await backend.finish(
            key,
            generation=generation,
            event="cancelled",
            data=terminal_data(reason="cancelled"),
            retention_ms=config.retention_ms,
            only_if_lapsed=False,
        )
        if state is None:
            return None
        stopped.generation = state.generation
        producer = local.get(key)
        if producer is not None and producer.generation != state.generation:
            producer = None
        if cancelled and producer is not None:
            producer._stop("cancelled")
        current = generation is None or generation == state.generation
        if wait and current and state.owner and not state.lease_expired:
            with anyio.move_on_after(wait):
                await stopped.wait(producer)
    finally:
        if wait:
            await fanout.remove(key, "control", stopped.on_signal)
    (final,) = await backend.states([key])
    return CancelResult(key, cancelled, producer_stopped(final), stream_status(final or state))
