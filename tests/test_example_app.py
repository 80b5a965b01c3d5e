"""The example app without a browser: its simulated model, its settings, and its
OpenAI-compatible model against a fake upstream (Stop must close the upstream request too,
or a stopped chat would go on costing tokens)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from example_app.llm import simulated_answer
from example_app.settings import Settings
from tests.support.polling import eventually
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
    }
    assert Settings.from_env(env) == Settings(
        redis_url="redis://127.0.0.1:6390/0", port=9000, tokens_per_s=2.5, openai_model="some-model"
    )


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
