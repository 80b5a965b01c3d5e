"""A real `taskiq worker` process (one worker process under Taskiq's process manager).

    with TaskiqWorker("tests.apps.worker_app:broker", env={"TEST_REDIS_URL": url}) as w:
        ...
        w.kill()      # SIGKILL to the manager and its worker process: a crash
        w.start()     # a new worker

Ready once its log says the receiver listens. Its environment is this process's minus
every `STREAMHUB_*` variable, plus `env`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support._process import REPO_ROOT, ManagedProcess, child_env

_READY = "Listening started."


class TaskiqWorker:
    """`python -m taskiq worker <broker> --workers 1`, as a child process group."""

    def __init__(
        self, broker: str, *, env: Mapping[str, str] | None = None, startup_timeout_s: float = 30
    ) -> None:
        self.broker = broker
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix="streamhub-taskiq-"))
        self._process = ManagedProcess("taskiq worker", self.dir / "worker.log")

    def start(self) -> Self:
        """Start a worker; returns once it listens for jobs."""
        ready_before = self.logs().count(_READY)
        argv = [sys.executable, "-m", "taskiq", "worker", self.broker, "--workers", "1"]
        argv += ["--log-level", "INFO", "--shutdown-timeout", "10"]
        env = child_env({"PYTHONUNBUFFERED": "1", **self.env}, drop_prefix="STREAMHUB_")
        self._process.spawn(argv, env=env, cwd=REPO_ROOT)
        self._process.wait_ready(
            lambda: self.logs().count(_READY) > ready_before, timeout_s=self.startup_timeout_s
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: the manager and its worker die at once."""
        if self._process.running:
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.kill()

    def logs(self) -> str:
        return self._process.logs()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
