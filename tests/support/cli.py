"""Running the real `streamhub` command in a child process, as an operator would.

`run_cli` runs one command to its end; `FollowingCli` starts `tail --follow` and reads
its output line by line while the test acts on the stream, then interrupts it (SIGINT,
as Ctrl-C does). The child's environment has no `STREAMHUB_*` variable of this
process: each test passes the ones it means.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.support._process import REPO_ROOT, child_env

CONSOLE_SCRIPT = Path(sys.executable).parent / "streamhub"
"""The console script pip installed beside this interpreter."""

MODULE = (sys.executable, "-m", "fastapi_streamhub")


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    return child_env(env, drop_prefix="STREAMHUB_")


async def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = MODULE,
    stdin: str = "",
    timeout_s: float = 60.0,
) -> CliRun:
    """Run `streamhub *args` to its end."""

    def run() -> CliRun:
        done = subprocess.run(
            [*command, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=cli_env(env),
            cwd=REPO_ROOT,
            timeout=timeout_s,
            check=False,
        )
        return CliRun(done.returncode, done.stdout, done.stderr)

    return await anyio.to_thread.run_sync(run)


class FollowingCli:
    """`streamhub *args` running in the background; `next_line()` reads its stdout."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self._process: Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None

    async def __aenter__(self) -> Self:
        self._process = await anyio.open_process(
            [*MODULE, *self.args],
            env={**cli_env(self.env), "PYTHONFAULTHANDLER": "1"},
            cwd=REPO_ROOT,
        )
        assert self._process.stdout is not None
        self._stdout = BufferedByteReceiveStream(self._process.stdout)
        return self

    async def next_line(self, *, timeout_s: float = 30.0) -> str:
        assert self._stdout is not None
        with anyio.fail_after(timeout_s):
            return (await self._stdout.receive_until(b"\n", 1 << 20)).decode()

    async def next_json(self, count: int, *, timeout_s: float = 30.0) -> list[Any]:
        return [json.loads(await self.next_line(timeout_s=timeout_s)) for _ in range(count)]

    async def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C: its exit code, and what it printed after the lines read."""
        process = self._process
        assert process is not None and self._stdout is not None
        process.send_signal(signal.SIGINT)
        with anyio.move_on_after(20):
            code = await process.wait()
        if process.returncode is None:  # hung: its Python stacks, by faulthandler
            process.send_signal(signal.SIGABRT)
            await process.wait()
            assert process.stderr is not None
            stacks = b"".join(await _drain(process.stderr)).decode()
            raise AssertionError(f"streamhub did not stop on SIGINT:\n{stacks}")
        rest = b"".join([self._stdout.buffer, *await _drain(self._stdout)])
        assert process.stderr is not None
        errors = b"".join(await _drain(process.stderr))
        return code, rest.decode(), errors.decode()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            if self._process.returncode is None:
                self._process.kill()
            await self._process.aclose()


async def _drain(stream: Any) -> list[bytes]:
    chunks: list[bytes] = []
    with anyio.move_on_after(5):
        try:
            while True:
                chunks.append(await stream.receive())
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
    return chunks
