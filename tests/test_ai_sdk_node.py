"""The AI SDK's own parser reads what `@ai_sdk_stream` sends, in each tested major of `ai`.

`tests/ai_sdk_client/read_stream.mjs` runs the SDK's `parseJsonEventStream` with its
`uiMessageChunkSchema` (every `data:` line is validated, as `useChat` validates it) and
builds the message with `readUIMessageStream`, as `useChat` builds it, under Node.js.
The answers come from `tests/apps/ai_sdk_app.py`, in process on the memory backend.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from tests.apps.ai_sdk_app import USAGE, create_app
from tests.support.npm import CLIENT, require_npm_packages
from tests.support.polling import eventually

pytestmark = pytest.mark.anyio

MAJORS = {"7": "ai", "6": "ai-v6", "5": "ai-v5"}
"""Each tested major of `ai`, and its package name in package.json."""


@pytest.fixture(scope="module")
def node() -> str:
    return require_npm_packages()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ai-sdk") as client,
    ):
        yield client


def read_with_sdk(node: str, package: str, stream: str) -> dict[str, Any]:
    """`{"chunks", "message", "errors"}` as the SDK reads `stream`."""
    done = subprocess.run(
        [node, "read_stream.mjs", package],
        input=stream,
        capture_output=True,
        text=True,
        cwd=CLIENT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def body(chat: str, **script: Any) -> dict[str, Any]:
    message = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather?"}]}
    return {"id": chat, "messages": [message], "trigger": "submit-message", **script}


@pytest.mark.parametrize("major", MAJORS)
async def test_every_part_of_the_vocabulary_builds_the_message(
    node: str, http: httpx.AsyncClient, major: str
) -> None:
    response = await http.post("/api/chat", json=body("tools", tools=True, count=2))
    generation = (await http.get("/api/chat/tools/status")).json()["generation"]

    read = read_with_sdk(node, MAJORS[major], response.text)

    assert read["errors"] == []
    assert len(read["chunks"]) == response.text.count("data: {")
    assert read["message"] == {
        "id": generation,
        "role": "assistant",
        "metadata": {"model": "weather-1", "usage": USAGE},
        "parts": [
            {"type": "step-start"},
            {
                "type": "reasoning",
                "id": "reasoning-1",
                "text": "Look it up. Then answer.",
                "state": "done",
            },
            {
                "type": "tool-get_weather",
                "toolCallId": "call_1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"celsius": 21},
            },
            {
                "type": "tool-get_time",
                "toolCallId": "call_2",
                "state": "output-error",
                "input": {},
                "errorText": "The clock is broken.",
            },
            {"type": "step-start"},
            {"type": "data-weather", "data": {"city": "Paris", "celsius": 21}},
            {"type": "text", "text": "tok0 tok1 ", "state": "done"},
        ],
    }


@pytest.mark.parametrize("major", MAJORS)
async def test_an_error_is_reported_as_useChat_reports_it(
    node: str, http: httpx.AsyncClient, major: str
) -> None:
    response = await http.post("/api/chat", json=body("failing", count=1, fail=True))

    read = read_with_sdk(node, MAJORS[major], response.text)

    assert read["errors"] == ["The model is unavailable."]
    assert read["message"]["parts"][-1] == {"type": "text", "text": "tok0 ", "state": "streaming"}


@pytest.mark.parametrize("major", MAJORS)
async def test_a_stopped_answer_ends_without_an_error(
    node: str, http: httpx.AsyncClient, major: str
) -> None:
    answers: list[httpx.Response] = []
    async with anyio.create_task_group() as group:

        async def ask() -> None:
            script = body("stopped", count=100_000, delay_ms=5)
            answers.append(await http.post("/api/chat", json=script))

        group.start_soon(ask)

        async def stored() -> bool:
            """Three tokens stored (after the stored `message_start`): yielded ones may
            still be in the producer's buffer, which the cancel refuses."""
            status = await http.get("/api/chat/stopped/status")
            return status.status_code == 200 and status.json()["last_seq"] >= 4

        await eventually(stored)
        await http.post("/api/chat/stopped/cancel")

    read = read_with_sdk(node, MAJORS[major], answers[0].text)

    assert read["errors"] == []
    assert read["chunks"][-1] == {"type": "abort"}
    text = read["message"]["parts"][-1]["text"]
    assert text.startswith("tok0 tok1 tok2 ")
