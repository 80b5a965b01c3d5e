"""The hub's shared tasks: one task group per running hub, with the tasks every stream
relies on (the writer, lease renewals, the Pub/Sub listener, the idle checks, the send
guard, inbox reads, finishing), each kept running by the supervisor.

They exist only between start and shutdown; what needs them asks here, and learns
that the hub is not started rather than finding a task group that is gone.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup

from ._config import HubConfig
from ._errors import HubNotStartedError
from ._fanout import Fanout
from ._finishing import Finishing
from ._inbox import InboxReader
from ._leases import LeaseKeeper
from ._local import LocalProducers
from ._send_guard import SendGuard
from ._supervisor import Supervisor
from ._watchdog import Watchdog
from ._writer import WindUp, Writer
from .backends._base import Backend


class SharedTasks:
    def __init__(self) -> None:
        self.task_group: TaskGroup | None = None
        self.supervisor: Supervisor | None = None
        self.writer: Writer | None = None

    def require_supervisor(self) -> Supervisor:
        if self.supervisor is None:
            raise HubNotStartedError()
        return self.supervisor

    def require_writer(self) -> Writer:
        if self.writer is None:
            raise HubNotStartedError()
        return self.writer

    async def start(
        self,
        *,
        backend: Backend,
        config: HubConfig,
        fanout: Fanout,
        producers: LocalProducers,
        send_guard: SendGuard,
        inboxes: InboxReader,
        finishing: Finishing,
        wind_up: WindUp,
    ) -> None:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self.task_group = task_group
        supervisor = self.supervisor = Supervisor(task_group)
        self.writer = Writer(backend, config, wind_up=wind_up)
        leases = LeaseKeeper(backend, config, producers.__iter__)
        watchdog = Watchdog(backend, fanout, config)
        supervisor.keep("writer", self.writer.run)
        supervisor.keep("leases", leases.run)
        supervisor.keep("listener", backend.run)
        supervisor.keep("watchdog", watchdog.run)
        supervisor.keep("send guard", send_guard.run)
        supervisor.keep("inboxes", inboxes.run)
        inboxes.start(supervisor.guard)
        finishing.start(supervisor)

    async def stop(self) -> None:
        """Cancel every task of the group and wait for them to end."""
        task_group = self.task_group
        if task_group is None:
            raise HubNotStartedError()
        task_group.cancel_scope.cancel()
        await task_group.__aexit__(None, None, None)

    def clear(self) -> None:
        self.task_group = None
        self.supervisor = None
        self.writer = None
