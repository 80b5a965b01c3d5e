"""What `hub.health()` answers: enough for a readiness probe and for a person at 3 a.m."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ._supervisor import TaskHealth


@dataclass(frozen=True, slots=True)
class HubHealth:
    """The hub's health: `ready` when it is started, storage answers, and every shared
    task runs. The rest says what is wrong when it is not."""

    ready: bool
    started: bool
    storage_ok: bool
    storage_error: str | None
    tasks: dict[str, TaskHealth]
    producers: int
    watched_keys: int

    def as_dict(self) -> dict[str, Any]:
        """As JSON-ready data (for a readiness route)."""
        return asdict(self)
