"""One child process under test control: spawn, signal, wait (always bounded), log.

Children get their own session (a Ctrl-C in the terminal reaches pytest, which then
stops them in order) and, when spawned from the main thread, a parent-death signal:
if the test run is killed outright, the kernel kills them too. The parent-death
signal belongs to the spawning *thread*, so it is not set from other threads (an
idle worker thread exiting would kill the server mid-test).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_LOG_TAIL_CHARS = 4000
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


class ServerStartError(RuntimeError):
    """A server process exited or did not become ready in time."""


def free_port() -> int:
    """Return a loopback TCP port that is free right now (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.02
) -> bool:
    """Poll `predicate` until it is true or `timeout_s` has passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _process_state(pid: int) -> str | None:
    """The one-letter state from /proc (R, S, T, Z, ...), or None if `pid` is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _death_signal_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


class ManagedProcess:
    """A child process whose stdout and stderr go to `log_path` (appended across restarts)."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        """Start `argv`; the previous child, if any, must have been stopped."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [*_death_signal_prefix(), *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        _live.add(self)

    @property
    def pid(self) -> int:
        """The pid of the current (or last) child."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """True while the child has not exited (a paused child is running)."""
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool], *, timeout_s: float) -> None:
        """Poll `probe` until true; raise `ServerStartError` if the child exits or time runs out."""

        def ready_or_dead() -> bool:
            return not self.running or probe()

        if not wait_until(ready_or_dead, timeout_s=timeout_s) or not self.running:
            problem = "exited" if not self.running else f"was not ready within {timeout_s} s"
            self.kill()
            raise ServerStartError(f"{self.name} {problem}; log tail:\n{self.logs_tail()}")

    def terminate(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM (and SIGCONT, in case it is paused); SIGKILL if it outlives `timeout_s`."""
        if not self.running:
            self._reap()
            return
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)
        try:
            self._wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL and reap. Safe to call on a child that has already exited."""
        if self.running:
            self._signal(signal.SIGKILL)
        self._reap()

    def pause(self, *, timeout_s: float = 5.0) -> None:
        """SIGSTOP, and wait until the kernel reports the child stopped."""
        self._signal(signal.SIGSTOP)
        if not wait_until(lambda: _process_state(self.pid) == "T", timeout_s=timeout_s):
            raise RuntimeError(f"{self.name} (pid {self.pid}) did not stop")

    def resume(self, *, timeout_s: float = 5.0) -> None:
        """SIGCONT, and wait until the child is no longer stopped."""
        self._signal(signal.SIGCONT)
        if not wait_until(lambda: _process_state(self.pid) != "T", timeout_s=timeout_s):
            raise RuntimeError(f"{self.name} (pid {self.pid}) did not resume")

    def logs(self) -> str:
        """Everything the child (and its earlier runs) wrote to stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs_tail(self) -> str:
        """The end of `logs()`, short enough for an assertion message."""
        return self.logs()[-_LOG_TAIL_CHARS:]

    def _signal(self, signum: signal.Signals) -> None:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if self._proc.poll() is None:
            self._proc.send_signal(signum)

    def _wait(self, timeout_s: float) -> None:
        if self._proc is not None:
            self._proc.wait(timeout=timeout_s)
            _live.discard(self)

    def _reap(self) -> None:
        # After SIGKILL (or an exit) the wait is short; the bound only guards a stuck kernel.
        self._wait(10.0)


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        process.kill()


def child_env(extra: Mapping[str, str] | None, *, drop_prefix: str = "") -> dict[str, str]:
    """This process's environment without `drop_prefix*` variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not (drop_prefix and k.startswith(drop_prefix))}
    env.update(extra or {})
    return env
