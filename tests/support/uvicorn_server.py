"""A real uvicorn process serving an app from this repository, on a free loopback port.

    with UvicornServer("example_app:app", env={"STREAMHUB_REDIS_URL": url}) as server:
        async with server.client() as http:            # httpx.AsyncClient on base_url
            response = await http.get("/chat/1/status")
        server.kill()                                  # the instance dies mid-stream

The child runs `python -m uvicorn` with this interpreter, from the repository root,
with `--lifespan on` (a failing startup fails the test instead of being ignored).
Its environment is this process's minus every `STREAMHUB_*` variable (so a developer's
shell cannot point a test at the shared Redis), plus `env`. Output goes to a log file:
`server.logs()` belongs in assertion messages.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support._process import REPO_ROOT, child_env
from tests.support._server import ChildServer


class UvicornServer(ChildServer):
    """`python -m uvicorn <app>` on 127.0.0.1:<free port>, as a child process.

    Args:
        app: The import string, e.g. `"tests.support.tiny_app:app"`.
        factory: Pass `--factory`: `app` names a callable that returns the app.
        env: Extra environment variables for the child.
        extra_args: More uvicorn options, e.g. `["--timeout-graceful-shutdown", "2"]`.
        ready_path: Polled until it gets the headers of any HTTP response (a 404 counts).
        startup_timeout_s: Bound on the wait for that response.
        cwd: The child's working directory (default: the repository root).
    """

    def __init__(
        self,
        app: str,
        *,
        factory: bool = False,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        ready_path: str = "/",
        startup_timeout_s: float = 20.0,
        cwd: Path = REPO_ROOT,
    ) -> None:
        super().__init__("uvicorn", startup_timeout_s=startup_timeout_s)
        self.app = app
        self.factory = factory
        self.env = dict(env or {})
        self.extra_args = tuple(extra_args)
        self.ready_path = ready_path
        self.cwd = cwd

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A new `httpx.AsyncClient` on `base_url`: `async with server.client() as http:`.

        Ignores proxy variables from the environment (`trust_env=False`); the default
        timeout is 10 s.
        """
        kwargs.setdefault("timeout", 10.0)
        return httpx.AsyncClient(base_url=self.base_url, trust_env=False, **kwargs)

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--lifespan", "on"]
        if self.factory:
            argv.append("--factory")
        return [*argv, *self.extra_args]

    def _env(self) -> dict[str, str]:
        return child_env({"PYTHONUNBUFFERED": "1", **self.env}, drop_prefix="STREAMHUB_")

    def _cwd(self) -> Path:
        return self.cwd

    def _ready(self) -> bool:
        try:
            with (
                httpx.Client(trust_env=False, timeout=1.0) as http,
                http.stream("GET", self.base_url + self.ready_path),
            ):
                pass  # Response headers arrived: the server is up (the body may never end).
        except httpx.TransportError:
            return False
        return True
