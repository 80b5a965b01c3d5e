"""Finish hooks: called once per generation with its result, at least once across crashes.

A generation claimed with a hook is marked in its state as owing it (`hook`: owed),
and its key is put in an index of keys that may owe one. After the terminal event is
stored, the instance that ran it takes the hook (an atomic hold in storage, renewed
while the hook runs), calls it with the result, and marks it done. If that instance
dies first, the hook stays owed: every instance sweeps the index once per lease and
runs, after a grace of one lease, each owed hook whose holder is gone (a producer that
died without its terminal event is first ended as lost). A new claim of the key waits
for an owed hook first, since it would delete the events the hook reads.

So a hook runs at least once per generation, with the same generation id each time,
unless the session is removed or expires before any instance could run it; it runs
twice only if a holder stalls past its hold. A hook that raises is logged, and counts
as run: retry inside it if the app needs to.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import anyio

from ._config import FinishHook, HubConfig
from ._errors import BackendUnavailableError
from ._events import terminal_data
from ._logs import about
from ._policy import Policies, call_hook
from ._result import read_result
from .backends._base import Backend, HookTake, SessionDetails, SessionState

logger = logging.getLogger("fastapi_streamhub")

Guard = Callable[[str, Callable[[], Awaitable[None]]], None]
AfterSweep = Callable[[str, str], None]

_LOST = terminal_data(message="The stream's producer was lost.", reason="producer_lost")
_SWEEP_LIMIT = 100
_SETTLE_POLL_S = 0.05


class FinishHooks:
    def __init__(
        self, backend: Backend, config: HubConfig, policies: Policies, holder: str
    ) -> None:
        self._backend = backend
        self._config = config
        self._policies = policies
        self._holder = holder
        self._marks: dict[tuple[str, str], str] = {}
        self._running = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def owe(self, key: str, generation: str) -> None:
        """Index `key` before its generation runs, so another instance finds the hook if
        this one dies."""
        mark = await self._backend.owe_hooks([key], delay_ms=3 * self._config.lease_ms)
        self._marks[(key, generation)] = mark

    def forget(self, key: str, generation: str) -> None:
        """The claim of `generation` failed: it owes nothing (its index entry is swept)."""
        self._marks.pop((key, generation), None)

    async def run_own(self, key: str, generation: str, name: str) -> None:
        """The generation this process ran has ended: run its hook now (the caller
        counted it `busy` when it scheduled this)."""
        try:
            mark = self._marks.pop((key, generation), None)
            taken = await self.run(key, generation, name, grace_ms=0)
            if taken in ("taken", "done", "none") and mark is not None:
                await self._backend.drop_hooks([(key, mark)])
        finally:
            self.idle()

    async def run_adopted(self, key: str, generation: str) -> None:
        """A generation this process adopted (a worker's) has ended: run the hook its
        claim set, if this process knows it (otherwise an instance that does runs it)."""
        details = await self._backend.details(key)
        if details is not None and details.state.generation == generation and details.hook_name:
            await self.run(key, generation, details.hook_name, grace_ms=0)

    async def run(self, key: str, generation: str, name: str, *, grace_ms: int) -> HookTake:
        """Take the hook and run it; what taking it answered (`busy`: not ours, for now)."""
        hook = self._policies.hook(name)
        if hook is None:
            return "busy"
        holder = f"{self._holder}:{secrets.token_hex(4)}"
        taken = await self._backend.take_hook(
            key,
            generation=generation,
            holder=holder,
            hold_ms=self._config.hook_hold_ms,
            grace_ms=grace_ms,
        )
        if taken != "taken":
            return taken
        self.busy()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_hold, key, generation, holder)
                await self._call(hook, key, generation)
                group.cancel_scope.cancel()
            await self._backend.hook_done(key, generation=generation)
        finally:
            self.idle()
        return "taken"

    def busy(self) -> None:
        """A hook is about to run (or is scheduled to): shutdown waits for it."""
        self._running += 1
        if self._running == 1:
            self._idle = anyio.Event()

    def idle(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.set()

    async def _call(self, hook: FinishHook, key: str, generation: str) -> None:
        result = await read_result(
            self._backend, key, generation, page_size=self._config.replay_batch
        )
        if result is None:
            return
        started, outcome = time.monotonic(), "ok"
        try:
            await call_hook(hook, result)
        except Exception:
            logger.exception(
                "stream %r (generation %s): the finish hook raised",
                key,
                generation,
                extra=about(key, generation),
            )
            outcome = "raised"
        if (observer := self._config.observer) is not None:
            observer.finish_hook_ran(key, generation, outcome, time.monotonic() - started)

    async def _keep_hold(self, key: str, generation: str, holder: str) -> None:
        every = self._config.hook_hold_ms / 3000
        while True:
            await anyio.sleep(every)
            try:
                await self._backend.take_hook(
                    key,
                    generation=generation,
                    holder=holder,
                    hold_ms=self._config.hook_hold_ms,
                    grace_ms=0,
                )
            except BackendUnavailableError as exc:
                logger.warning(
                    "stream %r (generation %s): the finish hook's hold not renewed: %s",
                    key,
                    generation,
                    exc,
                    extra=about(key, generation),
                )

    async def drain(self) -> None:
        """Wait until no hook of this process is running (bounded by the caller)."""
        await self._idle.wait()

    async def sweep(self, after: AfterSweep) -> None:
        """Run the hooks that instances which died left owed; `after(key, generation)`
        once each has run."""
        if not self._policies.has_hooks:
            return
        due = await self._backend.due_hooks(limit=_SWEEP_LIMIT)
        drop: list[tuple[str, str]] = []
        later: list[str] = []
        for key, mark in due:
            if await self._sweep_one(key, after):
                drop.append((key, mark))
            else:
                later.append(key)
        await self._backend.drop_hooks(drop)
        if later:
            await self._backend.owe_hooks(later, delay_ms=self._config.lease_ms)

    async def _sweep_one(self, key: str, after: AfterSweep) -> bool:
        details = await self._owed(key)
        if details is None:
            return True
        if details.state.status == "active":
            return False
        generation = details.state.generation
        taken = await self.run(key, generation, details.hook_name, grace_ms=self._config.lease_ms)
        if taken == "taken":
            logger.warning(
                "stream %r (generation %s): ran the finish hook its instance left owed",
                key,
                generation,
                extra=about(key, generation),
            )
            after(key, generation)
        return taken in ("taken", "done", "none")

    async def _owed(self, key: str) -> SessionDetails | None:
        """The session if its generation owes a hook (ended as lost first if its producer
        is gone); None if it owes none."""
        details = await self._backend.details(key)
        if details is None or details.hook in ("none", "done"):
            return None
        state = details.state
        if state.status == "active" and state.lease_expired:
            await self._end_lost(state)
            details = await self._backend.details(key)
            if details is None or details.hook in ("none", "done"):
                return None
        return details

    async def _end_lost(self, state: SessionState) -> None:
        await self._backend.finish(
            state.key,
            generation=state.generation,
            event="error",
            data=_LOST,
            retention_ms=self._config.retention_ms,
            only_if_lapsed=True,
        )

    async def settle(self, key: str) -> None:
        """A claim of `key` was refused because its last generation owes its hook: run it,
        or wait for whoever runs it. One this process cannot run is given up on after a
        grace, with an error in the log, so the key cannot stay blocked."""
        give_up = time.monotonic() + 2 * self._config.lease_ttl_s + self._config.hook_hold_ms / 1000
        while (details := await self._owed(key)) is not None:
            state = details.state
            if state.status != "active":
                taken = await self.run(
                    key, state.generation, details.hook_name, grace_ms=self._config.lease_ms
                )
                if taken != "busy":
                    return
            if time.monotonic() > give_up:
                logger.error(
                    "stream %r (generation %s): no instance ran its finish hook %r; "
                    "dropped, so that the key can start again",
                    key,
                    state.generation,
                    details.hook_name,
                    extra=about(key, state.generation),
                )
                await self._backend.hook_done(key, generation=state.generation)
                return
            await anyio.sleep(_SETTLE_POLL_S)
