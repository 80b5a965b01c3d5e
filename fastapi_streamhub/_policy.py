"""Per-kind stream settings: retention, abandonment and the finish hook of one route.

A policy is registered under a name (`@resumable_stream` uses its key template) on
every instance, so that the name, stored with a generation, tells any instance which
finish hook to run for it: the one that ran the generation, or another after it died.
What a policy leaves unset, the hub's settings give.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from ._config import FinishHook, HubConfig
from ._result import StreamResult

HUB_HOOK = "(hub)"
"""The name under which the hub's own `on_finish` is stored with a generation."""


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """Settings for the streams of one kind (one decorated route), over the hub's.

    Args:
        retention_s: how long a finished stream stays readable (at least the hub's
            `lease_ttl_s`); None: the hub's `retention_for`, else `retention_s`.
        abandon_after_s: cancel a generation no reader followed for this long; None:
            the hub's `abandon_after_s`.
        on_finish: called with the `StreamResult` of each generation once it has ended;
            None: the hub's `on_finish`.
    """

    retention_s: float | None = None
    abandon_after_s: float | None = None
    on_finish: FinishHook | None = None

    def __post_init__(self) -> None:
        for name in ("retention_s", "abandon_after_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """What one generation does, decided when it is claimed."""

    retention_ms: int
    abandon_after_ms: int | None
    hook: str
    """The name its finish hook is stored under; '' for none."""


class Policies:
    """The policies of one hub, by name."""

    def __init__(self, config: HubConfig) -> None:
        self._config = config
        self._by_name: dict[str, StreamPolicy] = {}

    def add(self, name: str, policy: StreamPolicy) -> None:
        if not name or name == HUB_HOOK:
            raise ValueError(f"a stream policy needs a name other than {HUB_HOOK!r}")
        retention = policy.retention_s
        if retention is not None and retention < self._config.lease_ttl_s:
            raise ValueError(
                f"the retention_s of {name!r} ({retention}) must be at least lease_ttl_s "
                f"({self._config.lease_ttl_s}): a running stream's keys would expire between "
                "two lease renewals"
            )
        self._by_name[name] = policy

    def plan(self, key: str, name: str | None) -> GenerationPlan:
        """The settings of `key`'s next generation under the policy `name` (or none)."""
        config = self._config
        policy = self._by_name.get(name or "", StreamPolicy())
        abandon = policy.abandon_after_s
        if abandon is None:
            abandon = config.abandon_after_s
        hook = ""
        if policy.on_finish is not None and name:
            hook = name
        elif config.on_finish is not None:
            hook = HUB_HOOK
        return GenerationPlan(
            retention_ms=config.retention_ms_for(key, policy.retention_s),
            abandon_after_ms=None if abandon is None else int(abandon * 1000),
            hook=hook,
        )

    def hook(self, name: str) -> FinishHook | None:
        """The finish hook stored under `name`, if this process knows it."""
        if name == HUB_HOOK:
            return self._config.on_finish
        policy = self._by_name.get(name)
        return None if policy is None else policy.on_finish

    @property
    def has_hooks(self) -> bool:
        """Some generation may owe a finish hook this process can run."""
        return self._config.on_finish is not None or any(
            policy.on_finish is not None for policy in self._by_name.values()
        )

    @property
    def abandons(self) -> bool:
        """Some generation may be abandoned: its readers must be counted."""
        return self._config.abandon_after_s is not None or any(
            policy.abandon_after_s is not None for policy in self._by_name.values()
        )


async def call_hook(hook: FinishHook, result: StreamResult) -> None:
    """Run a finish hook, sync or async."""
    outcome = hook(result)
    if inspect.isawaitable(outcome):
        await outcome
