"""The lifecycle that `RedisServer` and `UvicornServer` share: one server process on a
free loopback port, with its own temporary directory, restartable on the same port."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support._process import ManagedProcess, ServerStartError, free_port

_PORT_ATTEMPTS = 3


class ChildServer:
    """Base class: subclasses say how to run (`_argv`) and how to tell it is up (`_ready`)."""

    #: Text in the log that means the port was taken between choosing and binding it.
    bind_error = "already in use"

    def __init__(self, name: str, *, startup_timeout_s: float) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.dir = Path(tempfile.mkdtemp(prefix=f"streamhub-{name}-"))
        self._port: int | None = None
        self._process = ManagedProcess(name, self.dir / f"{name}.log")

    # -- to override ------------------------------------------------------------------

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> Mapping[str, str] | None:
        return None

    def _cwd(self) -> Path:
        return self.dir

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start on a free port, retrying with another if it was taken meanwhile."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._port = free_port()
            try:
                self._launch()
            except ServerStartError:
                if attempt == _PORT_ATTEMPTS or self.bind_error not in self.logs().lower():
                    raise
            else:
                break
        return self

    def restart(self) -> None:
        """Stop gracefully if still running (SIGKILL after 10 s), then start on the same port."""
        self._process.terminate()
        self._launch()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM (and SIGCONT if paused), wait up to `timeout_s`, then SIGKILL."""
        self._process.terminate(timeout_s=timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown code runs."""
        self._process.kill()

    def pause(self) -> None:
        """SIGSTOP: the process freezes; connections stay open but nothing is answered."""
        self._process.pause()

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        self._process.resume()

    def close(self) -> None:
        """Stop the process and delete its directory. Safe to call twice."""
        self._process.terminate()
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

    # -- facts ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1; unchanged by `restart()`."""
        if self._port is None:
            raise RuntimeError(f"{self._process.name} was never started")
        return self._port

    @property
    def pid(self) -> int:
        """The pid of the current (or last) process; a `restart()` changes it."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """True while the process exists (also while paused)."""
        return self._process.running

    def logs(self) -> str:
        """Everything the process printed, across restarts (for assertion messages)."""
        return self._process.logs()

    def _launch(self) -> None:
        self._process.spawn(self._argv(), env=self._env(), cwd=self._cwd())
        self._process.wait_ready(self._ready, timeout_s=self.startup_timeout_s)
