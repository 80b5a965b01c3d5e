"""The shell commands of README.md and docs/quickstart.md work when pasted, in order, into a
fresh copy of the repository; the commands run are read from the pages themselves.

Every ```sh block on those pages is named by `<!-- shell: name -->` on the line before it,
and `BLOCKS` below lists each page's names: a block without a name, or with one the test
does not know, fails `test_every_shell_block_is_named`, so the pages and this test cannot
drift apart. `NOT_RUN` says why the few blocks not run here are not.

Each scenario runs as a new user would, in two terminals, in a fresh copy of the repository
(`tests/support/repo_copy.py`: what git tracks, `make` on this interpreter's virtualenv):

- the ports the pages use (the Makefile's `QUICKSTART_PORT` and `DEMO_PORTS`) are swapped
  for free ones, in the commands and in make's variables, since a developer's `make run`
  or demo may hold them;
- docs/quickstart.md's install block is replaced by this virtualenv's `bin/` first on
  `PATH` and the copy on `PYTHONPATH` (what `pip install .` would have put there);
- a server block runs in the background until its ports answer HTTP, a client block then
  runs to its end and its output is checked, and at the end the server gets Ctrl-C
  (SIGINT to its process group): every process it started must be gone, and no file (such
  as a `dump.rdb`) left behind in the copy.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from example_app.llm import simulated_answer
from tests.support.markdown import code_blocks
from tests.support.repo_copy import Copy, Server, fresh_copy, make_defaults
from tests.support.sse import SSE, SSEParser

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = {
    "README.md": ["quickstart-server", "quickstart-client", "try-it", "demo-server", "demo-client"],
    "docs/quickstart.md": ["install", "serve", "start", "resume"],
}
NOT_RUN = {
    ("README.md", "try-it"): "`make test` is this suite; `make run` is the app `make demo` runs",
    ("docs/quickstart.md", "install"): "installs from PyPI; this virtualenv stands in for it",
}
SHELL_LANGS = ("sh", "bash", "shell", "console")


def shell_blocks(page: str) -> dict[str, str]:
    """The named shell blocks of `page`, by name."""
    blocks = code_blocks(ROOT / page, root=ROOT)
    return {b.note.text: b.text for b in blocks if b.lang in SHELL_LANGS and b.note}


def test_every_shell_block_is_named() -> None:
    for page, names in BLOCKS.items():
        blocks = code_blocks(ROOT / page, root=ROOT)
        shell = [b for b in blocks if b.lang in SHELL_LANGS]
        found = [b.note.text if b.note and b.note.kind == "shell" else b.where for b in shell]
        assert found == names, f"{page}: name each shell block <!-- shell: name --> in BLOCKS"
    assert all(name in BLOCKS[page] for page, name in NOT_RUN)
    assert make_defaults().keys() == {"QUICKSTART_PORT", "DEMO_PORTS"}


@pytest.fixture
def copy(tmp_path: Path) -> Copy:
    """A fresh copy of the repository (see `tests/support/repo_copy.py`)."""
    return fresh_copy(tmp_path / "repo")


@pytest.fixture
def serve(copy: Copy, tmp_path: Path) -> Iterator[Callable[[str, list[int]], Server]]:
    """`serve(text, ports)`: a started `Server`; killed at the end if still running."""
    started: list[Server] = []

    def start(text: str, ports: list[int]) -> Server:
        server = Server(copy, text, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        server.wait_ready(ports)
        return server

    yield start
    for server in started:
        if server.process.running:
            print(server.process.logs_tail())
        server.kill()


def _get(url: str) -> Any:
    return httpx.get(url, timeout=10.0, trust_env=False).raise_for_status().json()


def events(output: str) -> list[SSE]:
    """The events in the output of one or more `curl -N` calls."""
    parser = SSEParser()
    return [*parser.feed(output), *parser.close()]


def ids_and_data(got: list[SSE]) -> list[tuple[str, str, str]]:
    """Each event as (id with the generation replaced by `G`, event, data)."""
    generation = got[0].id.partition(":")[0]
    return [(e.id.replace(generation, "G"), e.event, e.data) for e in got]


QUICKSTART_ANSWER = [
    ("G:1", "message", '"Hello "'),
    ("G:2", "message", '"resumable "'),
    ("G:3", "message", '"world "'),
    ("G:4", "done", "{}"),
]


def test_readme_quickstart(copy: Copy, serve: Callable[[str, list[int]], Server]) -> None:
    blocks = shell_blocks("README.md")
    (port,) = copy.use_ports("QUICKSTART_PORT")
    assert f"localhost:{make_defaults()['QUICKSTART_PORT'][0]}" in blocks["quickstart-client"]
    server = serve(blocks["quickstart-server"], [port])

    output = copy.run(blocks["quickstart-client"])

    assert ids_and_data(events(output)) == QUICKSTART_ANSWER + QUICKSTART_ANSWER[2:]
    server.interrupt()
    assert copy.listing() == copy.files


def test_docs_quickstart(copy: Copy, serve: Callable[[str, list[int]], Server]) -> None:
    blocks = shell_blocks("docs/quickstart.md")
    (port,) = copy.use_ports("QUICKSTART_PORT")
    copy.activate()
    for name in ("serve", "start", "resume"):
        assert str(make_defaults()["QUICKSTART_PORT"][0]) in blocks[name], name
    server = serve(blocks["serve"], [port])

    started = events(copy.run(blocks["start"]))
    resumed = events(copy.run(blocks["resume"]))

    assert ids_and_data(started + resumed) == QUICKSTART_ANSWER + QUICKSTART_ANSWER[2:]
    server.interrupt()
    assert copy.listing() == copy.files


def test_readme_two_instance_demo(copy: Copy, serve: Callable[[str, list[int]], Server]) -> None:
    blocks = shell_blocks("README.md")
    a, b = copy.use_ports("DEMO_PORTS")
    for default in make_defaults()["DEMO_PORTS"]:
        assert f"localhost:{default}/" in blocks["demo-client"]
    server = serve(blocks["demo-server"], [a, b])
    names = [" ".join(p.cmdline()) for p in server.children]
    assert sum("redis-server" in name for name in names) == 1, names
    assert sum("-m example_app" in name for name in names) == 2, names

    got = events(copy.run(blocks["demo-client"]))

    starts = [i for i, e in enumerate(got) if e.id.endswith(":1")]
    assert len(starts) == 2, f"not one answer per curl: {[(e.id, e.event) for e in got]}"
    left, read = got[: starts[1]], got[starts[1] :]
    assert read[: len(left)] == left, "the second instance replays what the first sent"
    assert [e.id.partition(":")[2] for e in read] == [str(n) for n in range(1, len(read) + 1)]
    assert {e.id.partition(":")[0] for e in read} == {read[0].id.partition(":")[0]}
    prompt = read[0].json()["text"]
    assert read[0].event == "prompt"
    assert "".join(e.json() for e in read[1:-1]) == "".join(simulated_answer(prompt))
    assert read[-1].event == "done"
    assert 1 < len(left) < len(read) - 1, "the first curl left before the end"
    tokens = [_get(f"http://127.0.0.1:{port}/debug/tokens") for port in (a, b)]
    assert [t["generated"] for t in tokens] == [len(read) - 2, 0], "generated on A only"

    logs = server.interrupt()
    redis_url, redis_dir = _demo_redis(logs)
    for name, port in (("A", a), ("B", b)):
        assert f"{name} {port} | INFO:     Streams are kept in Redis at {redis_url}\n" in logs
    assert copy.listing() == copy.files, "the demo left files in the working tree"
    assert not redis_dir.exists()


def _demo_redis(logs: str) -> tuple[str, Path]:
    """The demo Redis's URL and directory, from the line the demo prints."""
    pattern = r"^demo: Redis on (redis://127\.0\.0\.1:\d+/0) \(no persistence; its files in (.+)\)$"
    ((url, directory),) = re.findall(pattern, logs, re.MULTILINE)
    return url, Path(directory)


def test_demo_stops_everything_when_one_process_dies(
    copy: Copy, serve: Callable[[str, list[int]], Server]
) -> None:
    a, b = copy.use_ports("DEMO_PORTS")
    server = serve(shell_blocks("README.md")["demo-server"], [a, b])
    (instance_b,) = [p for p in server.children if p.environ().get("PORT") == str(b)]

    instance_b.kill()

    logs = server.wait_stopped()
    assert "demo: a process exited; stopping the others\n" in logs
    assert not _demo_redis(logs)[1].exists()


def test_demo_refuses_a_taken_port(copy: Copy) -> None:
    a, _ = copy.use_ports("DEMO_PORTS")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", a))
        taken.listen()
        done = copy.shell(shell_blocks("README.md")["demo-server"])
    assert done.returncode != 0
    assert f"make demo: port {a} is taken; choose two free ports" in done.stderr
    assert "demo: Redis on" not in done.stdout
