"""A generation's life around its producer: decided when it is claimed (retention,
abandonment window, finish hook, by policy), settled after it ends (its finish hook,
then compaction), and watched while it runs (abandonment). The hub calls this at the
claim and at the producer's wind-up; the rest runs as supervised tasks of the hub.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import anyio

from ._abandon import Abandonment
from ._compaction import Compactor
from ._config import HubConfig
from ._cursor import new_generation
from ._errors import BackendUnavailableError
from ._fanout import Fanout
from ._finish_hooks import FinishHooks
from ._policy import GenerationPlan, Policies
from ._producer import Producer
from ._supervisor import Supervisor
from .backends._base import Backend, SessionState

logger = logging.getLogger("fastapi_streamhub")

_CLAIM_ATTEMPTS = 3
_TERMINAL_STOPS = frozenset({"done", "error", "cancelled", "unavailable", "failed"})


class Finishing:
    def __init__(
        self,
        backend: Backend,
        config: HubConfig,
        fanout: Fanout,
        holder: str,
        running: Callable[[], Iterable[Producer]],
    ) -> None:
        self._backend = backend
        self._config = config
        self._holder = holder
        self.policies = Policies(config)
        self.hooks = FinishHooks(backend, config, self.policies, holder)
        self.compactor = Compactor(backend, config)
        self.abandonment = Abandonment(backend, config, fanout, self.policies, running)
        self._plans: dict[tuple[str, str], GenerationPlan] = {}
        self._supervisor: Supervisor | None = None

    def start(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self.abandonment.start(supervisor.guard)
        supervisor.keep("compaction", self.compactor.run)
        supervisor.keep("finish hooks", self._sweep_forever)
        supervisor.keep("abandonment", self.abandonment.run)

    async def claim(self, key: str, policy: str | None) -> tuple[bool, SessionState]:
        """Claim `key` for a new generation under `policy`; a last generation that still
        owes its finish hook has it run (or waited for) first."""
        plan = self.policies.plan(key, policy)
        created, state = await self._claim(key, plan, self._holder, self._config.lease_ms)
        if created:
            self._plans[(key, state.generation)] = plan
            self.abandonment.track(key, state.generation, plan.abandon_after_ms)
        return created, state

    async def claim_pending(self, key: str, lease_ms: int) -> tuple[bool, SessionState]:
        """Claim `key` for a generation a worker will adopt within `lease_ms`, with the
        hub's retention and finish hook (the worker, or any instance, runs the hook)."""
        return await self._claim(key, self.policies.plan(key, None), "", lease_ms)

    async def _claim(
        self, key: str, plan: GenerationPlan, owner: str, lease_ms: int
    ) -> tuple[bool, SessionState]:
        for _ in range(_CLAIM_ATTEMPTS):
            generation = new_generation()
            if plan.hook:
                await self.hooks.owe(key, generation)
            created, state = await self._backend.claim(
                key,
                generation=generation,
                owner=owner,
                lease_ms=lease_ms,
                retention_ms=plan.retention_ms,
                pending=not owner,
                hook=plan.hook,
            )
            if created:
                return True, state
            self.hooks.forget(key, generation)
            if state.status == "active" and not state.lease_expired:
                break
            await self.hooks.settle(key)
        return False, state

    def ended(self, producer: Producer) -> None:
        """`producer` has stopped and its end is recorded: run its hook, compact it."""
        key, generation = producer.key, producer.generation
        plan = self._plans.pop((key, generation), None)
        self.abandonment.forget(key, generation)
        if producer.stop_reason not in _TERMINAL_STOPS or self._supervisor is None:
            return
        if plan is not None and plan.hook:
            hook = plan.hook
            self.hooks.busy()
            self._supervisor.guard(
                f"stream {key!r} (generation {generation}): finish hook",
                lambda: self.hooks.run_own(key, generation, hook),
            )
        elif plan is None and self.policies.has_hooks:  # adopted: its claim was elsewhere
            self._supervisor.guard(
                f"stream {key!r} (generation {generation}): finish hook",
                lambda: self.hooks.run_adopted(key, generation),
            )
        self.compactor.schedule(key, generation)

    async def _sweep_forever(self) -> None:
        while True:
            await anyio.sleep(self._config.lease_ttl_s)
            try:
                await self.hooks.sweep(self.compactor.schedule)
            except BackendUnavailableError as exc:
                logger.warning("owed finish hooks not swept, storage unavailable: %s", exc)

    async def drain(self) -> None:
        """Let the finish hooks running here end (the caller bounds the wait)."""
        await self.hooks.drain()
