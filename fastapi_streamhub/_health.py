"""What `hub.health()` answers: enough for a readiness probe and for a person at 3 a.m."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from ._errors import BackendUnavailableError
from ._supervisor import Supervisor, TaskHealth
from .backends._base import Backend

_PING_S = 2.0


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


async def check_health(
    backend: Backend, supervisor: Supervisor | None, *, producers: int, watched_keys: int
) -> HubHealth:
    """Ping storage (bounded, so a stalled server is reported rather than waited for) and
    copy each shared task's record, so the answer does not change after it is given."""
    error: str | None = None
    try:
        with anyio.fail_after(_PING_S):
            await backend.ping()
    except (BackendUnavailableError, TimeoutError) as exc:
        error = str(exc) or "storage did not answer in time"
    tasks = {} if supervisor is None else supervisor.tasks
    return HubHealth(
        ready=supervisor is not None and error is None and supervisor.healthy,
        started=supervisor is not None,
        storage_ok=error is None,
        storage_error=error,
        tasks={name: dataclasses.replace(task) for name, task in tasks.items()},
        producers=producers,
        watched_keys=watched_keys,
    )
