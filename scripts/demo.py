"""`make demo`: two instances of the demo chat on one private Redis, as behind a load balancer.

    python scripts/demo.py [--worker] [PORT_A PORT_B]      (default: 8001 8002)

With `--worker` (`make demo-worker`), a Taskiq worker process generates the answers
(`example_app/worker.py`) and the two instances only serve them: restart an instance
mid-answer and the answer goes on.

Starts `redis-server` on a free loopback port, without persistence and with its working
directory in a temporary directory (nothing lands in the working tree), then
`python -m example_app` on each port, pointed at it. Ctrl-C stops all three, and so does any
one of them exiting. The children run in sessions of their own, so the terminal's Ctrl-C
reaches only this script, which stops the instances first (their shutdown still writes to
Redis) and Redis last.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 15.0
REDIS_START_TIMEOUT_S = 10.0
INSTANCE_START_TIMEOUT_S = 30.0
REDIS_PORT_ATTEMPTS = 3


class DemoError(Exception):
    """Something the user can fix; the message says what."""


def main(argv: list[str] | None = None) -> int:
    """Run until Ctrl-C (exit 0) or until a process exits by itself (exit 1)."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    parser.add_argument("ports", nargs="*", type=int, default=[8001, 8002])
    parser.add_argument("--worker", action="store_true", help="answers come from a worker")
    args = parser.parse_args(argv)
    ports: list[int] = args.ports
    # Ctrl-C stops the demo even when it was started with SIGINT ignored, as a background
    # job of a shell without job control is.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with ExitStack() as stack:
            try:
                return _run(stack, ports, worker=args.worker)
            finally:
                # A second Ctrl-C must not cut the cleanup short and orphan a child.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except DemoError as error:
        print(f"make demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(stack: ExitStack, ports: list[int], *, worker: bool = False) -> int:
    if len(ports) != 2:
        raise DemoError(f"two ports are needed, got {ports}: make demo DEMO_PORTS='8001 8002'")
    for port in ports:
        _check_free(port)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="streamhub-demo-")))
    ended = threading.Event()
    redis_url = stack.enter_context(_redis(tmp, ended))
    print(f"demo: Redis on {redis_url} (no persistence; its files in {tmp})", flush=True)
    if worker:
        print("demo: a Taskiq worker generates the answers; kill an instance mid-answer and")
        print("demo: it is started again, while the answer goes on", flush=True)
    instances: list[subprocess.Popen[bytes]] = []
    stack.callback(_stop, instances)  # the instances first: their shutdown writes to Redis
    if worker:
        _start_with_worker(stack, instances, ports, redis_url, ended)
    else:
        for name, port in zip("AB", ports, strict=True):
            instances.append(_instance(name, port, redis_url, ended, {}))
    try:
        _wait_for_instances(ports, ended)
        ended.wait()
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
        return 0
    print("demo: a process exited; stopping the others", file=sys.stderr, flush=True)
    return 1


def _start_with_worker(
    stack: ExitStack,
    instances: list[subprocess.Popen[bytes]],
    ports: list[int],
    redis_url: str,
    ended: threading.Event,
) -> None:
    """The worker, whose exit stops the demo, and two instances that are started again
    whenever they exit."""
    extra = {"STREAMHUB_DEMO_WORKER": "1"}
    argv = ["-m", "taskiq", "worker", "example_app.worker:broker", "--workers", "1"]
    instances.append(_child("worker", argv, redis_url, ended, extra))
    stopping = threading.Event()
    stack.callback(stopping.set)  # runs before `_stop`: no restarts from then on
    for name, port in zip("AB", ports, strict=True):
        start = functools.partial(_instance, name, port, redis_url, None, extra)
        instances.append(start())
        _restart_on_exit(instances, len(instances) - 1, start, stopping)


def _wait_for_instances(ports: list[int], ended: threading.Event) -> None:
    """Print the addresses once both instances accept connections."""
    deadline = time.monotonic() + INSTANCE_START_TIMEOUT_S
    waiting = list(ports)
    while waiting and not ended.is_set() and time.monotonic() < deadline:
        waiting = [port for port in waiting if not _accepts(port)]
        ended.wait(0.1)
    if ended.is_set():
        return
    if waiting:
        print(f"demo: still no answer on port(s) {waiting}", file=sys.stderr, flush=True)
    for name, port in zip("AB", ports, strict=True):
        print(f"demo: instance {name} on http://127.0.0.1:{port}", flush=True)
    print("demo: both share the Redis above; Ctrl-C stops them all", flush=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (from make, or a supervisor) stops the demo as Ctrl-C does."""
    raise KeyboardInterrupt


def _check_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(
                f"port {port} is taken; choose two free ports: make demo DEMO_PORTS='8101 8102'"
            ) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _redis(tmp: Path, ended: threading.Event) -> Iterator[str]:
    """A private `redis-server`; retried on another port if the chosen one was taken."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise DemoError("redis-server is not installed (Debian: apt-get install redis-server)")
    for _ in range(REDIS_PORT_ATTEMPTS):
        port = _free_port()
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log")]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
        if _wait_for_redis(proc, port):
            break
    else:
        log = (tmp / "redis.log").read_text(errors="replace")[-2000:]
        raise DemoError(f"redis-server did not start; its log ends with:\n{log}")
    _watch(proc, ended)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop([proc])


def _wait_for_redis(proc: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if _pong(port):
            return True
        time.sleep(0.05)
    _stop([proc])
    return False


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _restart_on_exit(
    instances: list[subprocess.Popen[bytes]],
    index: int,
    start: Callable[[], subprocess.Popen[bytes]],
    stopping: threading.Event,
) -> None:
    """With `--worker`, a web instance that exits (kill it mid-answer) is started again
    on its port, while the worker goes on generating the answer."""

    def follow() -> None:
        while True:
            proc = instances[index]
            proc.wait()
            if stopping.is_set():
                return
            print(f"demo: instance pid {proc.pid} exited; starting it again", flush=True)
            fresh = instances[index] = start()
            if stopping.is_set():
                _stop([fresh])
                return

    threading.Thread(target=follow, daemon=True).start()


def _instance(
    name: str, port: int, redis_url: str, ended: threading.Event | None, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`python -m example_app` on `port`, its output prefixed with its name and port."""
    env = {"PORT": str(port), "HOST": "127.0.0.1", **extra}
    proc = _child(f"{name} {port}", ["-m", "example_app"], redis_url, ended, env)
    if extra:
        print(f"demo: instance {name} starts on port {port} as pid {proc.pid}", flush=True)
    return proc


def _child(
    name: str,
    argv: list[str],
    redis_url: str,
    ended: threading.Event | None,
    extra: dict[str, str],
) -> subprocess.Popen[bytes]:
    """`python <argv>` on the demo's Redis, its output prefixed with `name`."""
    env = {**os.environ, "STREAMHUB_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **extra}
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    _watch(proc, ended, on_line=_prefixer(f"{name} | "))
    return proc


def _prefixer(prefix: str) -> Callable[[bytes], None]:
    def write(line: bytes) -> None:
        sys.stdout.write(prefix + line.decode(errors="replace"))
        sys.stdout.flush()

    return write


def _watch(
    proc: subprocess.Popen[bytes],
    ended: threading.Event | None,
    on_line: Callable[[bytes], None] | None = None,
) -> None:
    """Copy the child's output through `on_line` (if piped), and set `ended` (if given)
    when it exits."""

    def follow() -> None:
        if proc.stdout is not None and on_line is not None:
            for line in proc.stdout:
                on_line(line)
        proc.wait()
        if ended is not None:
            ended.set()

    threading.Thread(target=follow, daemon=True).start()


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all, then SIGKILL to any still running after `STOP_TIMEOUT_S`."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
