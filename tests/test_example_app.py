"""The example app without a browser: its simulated model, its settings, and its
OpenAI-compatible model against a fake upstream (Stop must close the upstream request too,
or a stopped chat would go on costing tokens)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from example_app.llm import simulated_answer
from example_app.settings import Settings, mask_password
from tests.support._process import REPO_ROOT, child_env
from tests.support._server import ChildServer
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer
from tests.support.sse import read_events
from tests.support.uvicorn_server import UvicornServer


def test_simulated_answer_is_deterministic_and_joins_to_the_exact_text() -> None:
    prompt = "  Ünïcödé\r\nprompt  "
    tokens = simulated_answer(prompt)
    assert tokens == simulated_answer(prompt)
    assert "".join(tokens).startswith("You asked: “Ünïcödé\r\nprompt”\n\n")
    assert all(token.strip() for token in tokens), "every token carries text"
    assert simulated_answer("another prompt") != tokens


def test_settings_come_from_the_environment() -> None:
    assert Settings.from_env({}) == Settings()
    env = {
        "STREAMHUB_REDIS_URL": "redis://127.0.0.1:6390/0",
        "HOST": "",
        "PORT": "9000",
        "STREAMHUB_DEMO_TOKENS_PER_S": "2.5",
        "OPENAI_MODEL": "some-model",
        "STREAMHUB_COMPACT_AFTER_S": "0",
    }
    assert Settings.from_env(env) == Settings(
        redis_url="redis://127.0.0.1:6390/0",
        port=9000,
        tokens_per_s=2.5,
        openai_model="some-model",
        compact_after_s=0.0,
    )


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@redis:6379/0", "redis://:****@redis:6379/0"),
        ("rediss://app:p%40ss@redis.example:6380/1", "rediss://app:****@redis.example:6380/1"),
        (
            "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0",
            "redis+sentinel://:****@s1:26379,s2:26379/mymaster/0",
        ),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=****"),
        ("redis://user@redis:6379", "redis://user@redis:6379"),
    ],
)
def test_the_backend_is_described_without_its_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked
    assert Settings(redis_url=url).describe_backend() == f"in Redis at {masked}"
    assert Settings().describe_backend().startswith("in memory")


class ExampleAppMain(ChildServer):
    """`python -m example_app`, as `make run` and `make demo` start it (uvicorn's own
    command line would not set up the app's logging)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("example_app", startup_timeout_s=20.0)
        self.env = env

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "example_app"]

    def _env(self) -> dict[str, str]:
        extra = {"HOST": "127.0.0.1", "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        return child_env({**extra, **self.env}, drop_prefix="STREAMHUB_")

    def _cwd(self) -> Path:
        return REPO_ROOT

    def _ready(self) -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{self.port}/openapi.json", trust_env=False, timeout=1.0)
        except httpx.TransportError:
            return False
        return True


def test_the_app_logs_where_it_keeps_its_streams(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    redis = make_redis_server(extra_args=["--user", "app", "on", ">s3cret", "~*", "&*", "+@all"])
    url = f"redis://app:s3cret@127.0.0.1:{redis.port}/0"
    with ExampleAppMain({"STREAMHUB_REDIS_URL": url}) as on_redis, ExampleAppMain({}) as in_memory:
        status = httpx.get(f"http://127.0.0.1:{on_redis.port}/chat/1/status", trust_env=False)
        assert status.status_code == 404, status.text  # Redis let the app in
        with redis.sync_client() as client:
            assert "app" in {connection["user"] for connection in client.client_list()}
        logs = on_redis.logs()
        line = f"INFO:     Streams are kept in Redis at redis://app:****@127.0.0.1:{redis.port}/0\n"
        assert line in logs, logs
        assert "s3cret" not in logs
        memory_line = "INFO:     Streams are kept in memory (set STREAMHUB_REDIS_URL"
        assert memory_line in in_memory.logs(), in_memory.logs()


@pytest.mark.anyio
async def test_stop_closes_the_upstream_openai_request(
    make_uvicorn_server: Callable[..., UvicornServer],
) -> None:
    pytest.importorskip("openai", reason="the optional `openai` extra is not installed")
    upstream = make_uvicorn_server("tests.apps.fake_openai:app")
    env = {
        "OPENAI_MODEL": "fake-model",
        "OPENAI_BASE_URL": f"{upstream.base_url}/v1",
        "OPENAI_API_KEY": "test-key",
    }
    demo = make_uvicorn_server("example_app.app:app", env=env)
    async with demo.client() as http, upstream.client() as fake:
        first = await read_events(http, "POST", "/chat/upstream", json={"text": "hi"}, limit=4)
        assert first[0].event == "prompt"
        assert [event.json() for event in first[1:]] == ["w0 ", "w1 ", "w2 "]

        cancel = await http.post("/chat/upstream/cancel")
        assert cancel.json()["status"] == "cancelled", cancel.text

        headers = {"Last-Event-ID": first[-1].id}
        rest = await read_events(http, "GET", "/chat/upstream/stream", headers=headers)
        assert rest[-1].event == "cancelled"
        assert [event.json() for event in rest[:-1]] == [f"w{i} " for i in range(3, len(rest) + 2)]

        async def upstream_request_abandoned() -> bool:
            stats = (await fake.get("/stats")).json()
            return bool(stats == {"requests": 1, "open": 0, "completed": 0, "abandoned": 1})

        await eventually(upstream_request_abandoned)
        assert (await http.get("/debug/tokens")).json()["running"] == 0
