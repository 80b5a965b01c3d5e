"""The agent mode of the demo in Chromium (issue 11): a planner, a search tool-caller in the
same process and a calculator joining from the tool worker process, on two instances
sharing a real Redis.

A page reloaded mid-answer must end with the same transcript as a page on the other
instance that followed the answer without interruption, and as the stream storage holds:
the same turns, in the same order, each attributed to the same source; and each source's
text must be the one it wrote, whole and once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from example_app.agents import calculator_steps, planner_tokens, search_steps
from fastapi_streamhub import Event
from tests.support._process import REPO_ROOT, ManagedProcess, child_env
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APP = "example_app.app:app"
TOKENS_PER_S = 20
STORAGE_KEY = "streamhub-demo:agents"
TIMEOUT_MS = 40_000
PROMPT = "Which tides matter for a résumé of 東京 harbour? 🚀"

Turn = tuple[str, str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def instances(
    make_uvicorn_server: Callable[..., UvicornServer], redis_url: str, tmp_path: Path
) -> Iterator[tuple[UvicornServer, UvicornServer]]:
    """Two instances of the demo on one Redis, and the tool worker process."""
    env = {"STREAMHUB_REDIS_URL": redis_url, "STREAMHUB_DEMO_TOKENS_PER_S": str(TOKENS_PER_S)}
    web_env = {**env, "STREAMHUB_DEMO_TOOL_WORKER": "1"}
    worker = ManagedProcess("tool worker", tmp_path / "tool-worker.log")
    worker.spawn(
        [sys.executable, "-m", "example_app.tool_worker"],
        env=child_env({"PYTHONUNBUFFERED": "1", **env}, drop_prefix="STREAMHUB_"),
        cwd=REPO_ROOT,
    )
    try:
        worker.wait_ready(lambda: "takes calls" in worker.logs(), timeout_s=20)
        yield make_uvicorn_server(APP, env=web_env), make_uvicorn_server(APP, env=web_env)
    finally:
        worker.terminate()
        print(f"--- tool worker log ---\n{worker.logs_tail()}")


def new_page(browser: Browser) -> Page:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def stored(page: Page) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(page.evaluate(f"localStorage.getItem('{STORAGE_KEY}')"))
    return record


def wait_for_seq(page: Page, seq: int) -> None:
    page.wait_for_function(
        "([key, seq]) => (JSON.parse(localStorage.getItem(key))?.seq ?? 0) >= seq",
        arg=[STORAGE_KEY, seq],
        timeout=TIMEOUT_MS,
    )


def turns_on(page: Page) -> list[Turn]:
    """The transcript as rendered: each turn's source and its exact text."""
    found: list[Turn] = page.locator("#transcript .turn").evaluate_all(
        "els => els.map(el => [el.dataset.source, el.querySelector('.turn-text').textContent])"
    )
    return [tuple(turn) for turn in found]  # type: ignore[misc]


def turns_in_storage(server: UvicornServer, chat_id: str) -> list[Turn]:
    """The transcript the stored stream makes, read from its start over SSE."""
    turns: list[list[str]] = []
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as http:
        body = http.get(f"/agents/{chat_id}/stream").text
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" not in fields:
            continue
        name, value = fields.get("event"), json.loads(fields["data"])
        if name == "source":
            source, name, value = value["source"], value.get("event"), value.get("data")
        else:
            source = "main"
        if name in ("done", "error", "cancelled", "joined"):
            continue
        part = value if name is None else f"{name}: {json.dumps(value, separators=(',', ':'))}"
        if turns and turns[-1][0] == source:
            turns[-1][1] += part
        else:
            turns.append([source, part])
    return [(source, text) for source, text in turns]


READ_WITH_EVENT_SOURCE = """chatId => new Promise((resolve, reject) => {
  // What a page that only has the browser's EventSource makes of the stream.
  const turns = [];
  const add = (source, part) => {
    const last = turns.at(-1);
    if (last && last[0] === source) last[1] += part;
    else turns.push([source, part]);
  };
  const source = new EventSource(`/agents/${chatId}/stream`);
  source.onmessage = (e) => add("main", JSON.parse(e.data));
  source.addEventListener("source", (e) => {
    const { source: name, event, data } = JSON.parse(e.data);
    if (["done", "error", "cancelled", "joined"].includes(event)) return;
    add(name, event === undefined ? data : `${event}: ${JSON.stringify(data)}`);
  });
  source.addEventListener("done", () => { source.close(); resolve(turns); });
  source.onerror = () => { source.close(); reject(new Error("the stream failed")); };
})"""


def turns_from_event_source(page: Page, chat_id: str) -> list[Turn]:
    """The transcript the browser's own `EventSource` reads from the start."""
    found: list[list[str]] = page.evaluate(READ_WITH_EVENT_SOURCE, chat_id)
    return [(source, text) for source, text in found]


def written(steps: list[str | Event]) -> str:
    """A source's whole text as the page shows it: its text, then its result chips."""
    text = "".join(step for step in steps if isinstance(step, str))
    chips = "".join(
        f"{step.event}: {json.dumps(step.data, separators=(',', ':'))}"
        for step in steps
        if isinstance(step, Event)
    )
    return text + chips


def per_source(turns: list[Turn]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for source, text in turns:
        texts[source] = texts.get(source, "") + text
    return texts


def test_a_reload_mid_answer_keeps_the_order_and_attribution_of_every_source(
    browser: Browser, instances: tuple[UvicornServer, UvicornServer]
) -> None:
    a, b = instances
    reloaded, follower = new_page(browser), new_page(browser)
    reloaded.goto(f"{a.base_url}/agents")
    reloaded.get_by_label("Your message").fill(PROMPT)
    reloaded.get_by_role("button", name="Send").click()
    wait_for_seq(reloaded, 3)
    chat_id = stored(reloaded)["chatId"]
    follower.goto(f"{b.base_url}/agents?chat={chat_id}")
    wait_for_seq(reloaded, 12)
    before = stored(reloaded)

    reloaded.reload()

    for page in (reloaded, follower):
        expect(page.locator("#state")).to_have_text("done", timeout=TIMEOUT_MS)
    assert before["state"] == "streaming", "the reload came after the answer ended"
    assert stored(reloaded)["generation"] == before["generation"]
    transcript = turns_on(follower)
    assert turns_on(reloaded) == transcript
    assert turns_in_storage(b, chat_id) == transcript
    assert per_source(transcript) == {
        "main": "".join(planner_tokens(PROMPT)),
        "search": written(search_steps(PROMPT)),
        "calculator": written(calculator_steps(PROMPT)),
    }
    assert len({source for source, _ in transcript}) == 3
    assert len(transcript) > 3, "the sources did not interleave"
    assert turns_from_event_source(reloaded, chat_id) == transcript
    legend = reloaded.locator("#sources li").evaluate_all(
        "els => els.map(el => [el.dataset.source, el.dataset.ended])"
    )
    assert sorted(legend) == [["calculator", "done"], ["main", "done"], ["search", "done"]]
