"""Supervision: no reply, message or bug in one stream's path stops the hub.

The hub's shared tasks (the writer, lease renewals, the Pub/Sub listener, the idle
checks) run under `Supervisor.keep`: one that fails is logged, recorded for
`hub.health()`, and started again after a backoff, never silently gone. Per-stream
tasks run under `Supervisor.guard`: whatever they raise is logged and handed to
their own cleanup, so it can end that stream and nothing else. Neither lets an
exception reach the hub's task group, which would cancel every stream at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

logger = logging.getLogger("fastapi_streamhub")

_MAX_BACKOFF_S = 5.0


@dataclass(slots=True)
class TaskHealth:
    """What `hub.health()` reports of one shared task."""

    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class Supervisor:
    def __init__(self, task_group: TaskGroup) -> None:
        self._task_group = task_group
        self.tasks: dict[str, TaskHealth] = {}

    def keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` for the hub's lifetime, starting it again whenever it fails."""
        self.tasks[name] = TaskHealth()
        self._task_group.start_soon(self._keep, name, run, name=f"streamhub {name}")

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        health = self.tasks[name]
        backoff = 0.0
        while True:
            health.running = True
            started = time.monotonic()
            try:
                await run()
                raise RuntimeError(f"the hub's {name} task returned")
            except Exception as exc:
                health.running = False
                health.restarts += 1
                health.last_error = f"{type(exc).__name__}: {exc}"
                health.last_error_at = time.time()
                logger.exception("the hub's %s task failed; starting it again", name)
            if time.monotonic() - started > _MAX_BACKOFF_S:
                backoff = 0.0
            backoff = min(max(backoff * 2, 0.05), _MAX_BACKOFF_S)
            await anyio.sleep(backoff)

    def guard(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        on_error: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        """Run one stream's task; what it raises goes to the log and to `on_error`."""
        self._task_group.start_soon(self._guard, name, run, on_error, name=f"streamhub {name}")

    @staticmethod
    async def _guard(
        name: str,
        run: Callable[[], Awaitable[None]],
        on_error: Callable[[BaseException], Awaitable[None]] | None,
    ) -> None:
        try:
            await run()
        except Exception as exc:
            logger.exception("%s failed", name)
            if on_error is not None:
                try:
                    await on_error(exc)
                except Exception:
                    logger.exception("%s: cleaning up after the failure failed too", name)

    @property
    def healthy(self) -> bool:
        return all(task.running for task in self.tasks.values())
