"""A fresh copy of this repository to run documented commands in, as a new user would.

- `fresh_copy(dest)`: the files git tracks or would track in this checkout (`git ls-files
  --cached --others --exclude-standard`), copied to `dest`: no `.venv`, no caches, nothing
  ignored, uncommitted edits included. Its environment makes `make` use this interpreter's
  virtualenv (`VENV=<it>`, which the Makefile uses as it is) rather than install one.
- `Copy.use_ports(variable)`: free ports in place of the Makefile's defaults, in make's
  variable and in the commands `Copy.script` rewrites.
- `Server`: a block that serves, run in the background in a session of its own; stopped
  by SIGINT to its process group, as Ctrl-C in its terminal would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.support._process import REPO_ROOT, ManagedProcess, free_port, wait_until

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 30.0
#: A developer's settings that would change what the commands do (the demo's backend or
#: model, make's flags, another virtualenv).
_NOT_INHERITED = ("STREAMHUB_", "OPENAI_", "MAKE", "MFLAGS", "PYTHON", "VIRTUAL_ENV")


def make_defaults() -> dict[str, list[int]]:
    """The ports the Makefile uses by default, by variable."""
    text = (REPO_ROOT / "Makefile").read_text("utf-8")
    found = re.findall(r"^(QUICKSTART_PORT|DEMO_PORTS) \?= ([\d ]+)$", text, re.MULTILINE)
    return {name: [int(port) for port in ports.split()] for name, ports in found}


def fresh_copy(dest: Path) -> Copy:
    """Copy what git tracks or would track in this checkout to `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        raise RuntimeError(f"needs a git checkout to copy: {listed.stderr.decode()}")
    for name in listed.stdout.decode().split("\0"):
        source = REPO_ROOT / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return Copy(dest)


class Copy:
    """A fresh copy of the repository, with the environment and ports to run it in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports: dict[int, int] = {}
        venv = Path(sys.prefix)
        if not (venv / "bin" / "python").exists():
            raise RuntimeError(f"run the tests in a virtualenv: make reuses it ({venv})")
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith(_NOT_INHERITED)
        }
        self.env["VENV"] = str(venv)
        self.venv = venv
        self.files = self.listing()

    def listing(self) -> set[str]:
        """Every file in the copy, but Python's byte-code caches."""
        paths = self.root.rglob("*")
        return {p.relative_to(self.root).as_posix() for p in paths if "__pycache__" not in p.parts}

    def use_ports(self, variable: str) -> list[int]:
        """Free ports in place of the Makefile's defaults for `variable`."""
        defaults = make_defaults()[variable]
        ports = [free_port() for _ in defaults]
        self.ports |= dict(zip(defaults, ports, strict=True))
        self.env[variable] = " ".join(map(str, ports))
        return ports

    def activate(self) -> None:
        """What `. .venv/bin/activate` after `pip install .` amounts to, for the copy."""
        self.env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{self.env['PATH']}"
        self.env["VIRTUAL_ENV"] = str(self.venv)
        self.env["PYTHONPATH"] = str(self.root)

    def script(self, text: str) -> str:
        """`text` with the Makefile's default ports replaced by this copy's."""
        for default, port in self.ports.items():
            text = re.sub(rf"\b{default}\b", str(port), text)
        return text

    def shell(self, text: str) -> subprocess.CompletedProcess[str]:
        """Run a block to its end, with its output captured."""
        return subprocess.run(
            ["bash", "-c", self.script(text)],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
            check=False,
        )

    def run(self, text: str) -> str:
        """Run a client block to its end; its stdout, once it has succeeded."""
        done = self.shell(text)
        assert done.returncode == 0, f"{text}\nexit {done.returncode}\n{done.stderr}"
        return done.stdout


class Server:
    """A server block running in the background, in a session (process group) of its own."""

    def __init__(self, copy: Copy, text: str, log: Path) -> None:
        self.copy = copy
        self.process = ManagedProcess("shell", log)
        self.process.spawn(["bash", "-c", copy.script(text)], env=copy.env, cwd=copy.root)
        self.children: list[psutil.Process] = []

    def wait_ready(self, ports: list[int]) -> None:
        """Until each port answers HTTP; then note every process the block started."""
        self.process.wait_ready(lambda: all(map(_answers, ports)), timeout_s=START_TIMEOUT_S)
        self.children = psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self) -> str:
        """Ctrl-C: SIGINT to the process group; everything must stop. Returns the output."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.wait_stopped()

    def wait_stopped(self) -> str:
        """Until the block and every process it started have ended; the block's output."""
        stopped = wait_until(lambda: not self.process.running, timeout_s=STOP_TIMEOUT_S)
        assert stopped, f"still running:\n{self.process.logs_tail()}"
        _, alive = psutil.wait_procs(self.children, timeout=STOP_TIMEOUT_S)
        assert not alive, f"left running: {alive}"
        return self.process.logs()

    def kill(self) -> None:
        """After a failure: Ctrl-C first (so the demo removes its temporary directory),
        then SIGKILL to whatever is left."""
        with contextlib.suppress(psutil.NoSuchProcess):
            self.children += psutil.Process(self.process.pid).children(recursive=True)
        if self.process.running:
            os.killpg(self.process.pid, signal.SIGINT)
            wait_until(lambda: not self.process.running, timeout_s=STOP_TIMEOUT_S)
        for process in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process.kill()


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1.0, trust_env=False)
    except httpx.TransportError:
        return False
    return True
