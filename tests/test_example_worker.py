"""`make demo-worker` (`scripts/demo.py --worker`): Redis, a Taskiq worker that generates
the answers and two web instances. Killing an instance mid-answer does not interrupt the
answer: the demo starts the instance again, and resuming there shows it complete."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from example_app.llm import simulated_answer
from tests.support._process import REPO_ROOT, ManagedProcess, child_env, free_port, wait_until
from tests.support.sse import read_events

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/debug/tokens", trust_env=False).is_success
    except httpx.TransportError:
        return False


def _pid(logs: str, name: str, port: int) -> list[int]:
    pattern = rf"^demo: instance {name} starts on port {port} as pid (\d+)$"
    return [int(pid) for pid in re.findall(pattern, logs, re.MULTILINE)]


async def test_an_instance_killed_mid_answer_comes_back_and_the_answer_is_whole(
    tmp_path: Path,
) -> None:
    a, b = free_port(), free_port()
    demo = ManagedProcess("demo", tmp_path / "demo.log")
    env = child_env({"STREAMHUB_DEMO_TOKENS_PER_S": "40", "PYTHONUNBUFFERED": "1"})
    argv = [sys.executable, "scripts/demo.py", "--worker", str(a), str(b)]
    demo.spawn(argv, env=env, cwd=REPO_ROOT)
    try:
        demo.wait_ready(
            lambda: _answers(a) and _answers(b) and "Listening started." in demo.logs(),
            timeout_s=60,
        )
        prompt = "Does the answer survive a restart?"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a}", trust_env=False) as http:
            head = await read_events(http, "POST", "/chat/w1", json={"text": prompt}, limit=6)
            (first_pid,) = _pid(demo.logs(), "A", a)
            os.kill(first_pid, signal.SIGKILL)
            restarted = await anyio.to_thread.run_sync(
                lambda: wait_until(lambda: len(_pid(demo.logs(), "A", a)) == 2, timeout_s=30)
            )
            assert restarted, demo.logs_tail()
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: _answers(a), timeout_s=30))
            rest = await read_events(
                http, "GET", "/chat/w1/stream", headers={"Last-Event-ID": head[-1].id}, timeout_s=30
            )
        events = head + rest
        assert events[0].event == "prompt" and events[-1].event == "done"
        assert "".join(e.json() for e in events[1:-1]) == "".join(simulated_answer(prompt))
        assert [int(e.id.rsplit(":", 1)[1]) for e in events] == list(range(1, len(events) + 1))
        async with httpx.AsyncClient(trust_env=False) as http:
            for port in (a, b):
                tokens = (await http.get(f"http://127.0.0.1:{port}/debug/tokens")).json()
                assert tokens["generated"] == 0, "the web instances generate nothing"
    finally:
        demo.terminate(timeout_s=30)
    logs = demo.logs()
    assert f"demo: instance pid {first_pid} exited; starting it again" in logs
    match = re.search(r"its files in (.+)\)$", logs, re.MULTILINE)
    assert match is not None and not await anyio.Path(match.group(1)).exists()
