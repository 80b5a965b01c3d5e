"""`--profile`: py-spy samples each server while it is measured, then hot functions.

py-spy (`pip install py-spy`) samples from outside the process, so the server
under test runs unmodified; `--nonblocking` keeps it from pausing the server
at each sample. Figures from a profiled run are still a little slower: use them
to see where time goes, not as the benchmark's figures.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmarks.processes import REPO

SAMPLES_PER_S = 250


def py_spy() -> str:
    """The py-spy beside this interpreter, or on PATH; fails fast when missing."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


@contextlib.contextmanager
def recording(pid: int, out: Path) -> Iterator[None]:
    """Sample `pid` for the duration of the block into `out` (collapsed stacks)."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    cmd += ["--rate", str(SAMPLES_PER_S), "--nonblocking", "--function"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        proc.wait(30)


def hot_functions(raw: Path, top: int = 12) -> str:
    """The functions holding the CPU: by own time, and (ours only) including callees."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    total = sum(own.values()) or 1
    ours = Counter({f: n for f, n in inclusive.items() if "fastapi_streamhub" in f})
    lines = [f"{raw.name}: {total} samples while busy", "  own time:"]
    lines += [f"    {n * 100 / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  fastapi_streamhub, including callees:")
    lines += [f"    {n * 100 / total:5.1f}%  {f}" for f, n in ours.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`fn (/long/path/site-packages/pkg/mod.py:12)` -> `fn (pkg/mod.py:12)`."""
    name, _, where = frame.partition(" (")
    for marker in ("site-packages/", f"{REPO}/", "/lib/python3."):
        _, found, rest = where.partition(marker)
        if found:
            where = rest.split("/", 1)[1] if marker == "/lib/python3." else rest
            break
    return f"{name} ({where}"
