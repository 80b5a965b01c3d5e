"""`useChat({resume: true})` from the npm registry's `ai` and `@ai-sdk/react`, in Debian's
Chromium, against the demo app's `POST /api/chat` (`@ai_sdk_stream`) in a real uvicorn process.

The page (`tests/ai_sdk_client/page/main.jsx`) is bundled with esbuild when this module starts,
from the packages `npm ci` installed from the committed lockfile, and served to the browser by
Playwright at `/ai-sdk-page/` on the app's own origin: nothing comes from a CDN. Every check
compares what the page shows with `simulated_answer(prompt)` character for character; every
wait is bounded and waits for a condition, never for a fixed time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)

from example_app.llm import simulated_answer
from tests.support._process import wait_until
from tests.support.npm import CLIENT, ESBUILD, require_npm_packages
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APP = "example_app.app:app"
PAGE_PATH = "/ai-sdk-page/"
TIMEOUT_MS = 30_000
# Slow enough to act mid-answer (an answer is about 100 tokens), fast enough for a quick suite.
TOKENS_PER_S = 20
PROMPT = "How do résumé-proof streams work?  Ünïcödé, “quotes” and 🚀 included."


REACT_PACKAGES = {7: "@ai-sdk/react", 6: "@ai-sdk/react-v3", 5: "@ai-sdk/react-v2"}
"""The `@ai-sdk/react` of each tested major of `ai` (aliases in package.json)."""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page bundled for each tested major, in `<dir>/v<major>/`, from the installed
    npm packages."""
    require_npm_packages()
    root = tmp_path_factory.mktemp("ai-sdk-page")
    for major, package in REACT_PACKAGES.items():
        out = root / f"v{major}"
        subprocess.run(
            [
                str(ESBUILD),
                "page/main.jsx",
                "--bundle",
                "--format=esm",
                "--jsx=automatic",
                f"--alias:@ai-sdk/react={package}",
                '--define:process.env.NODE_ENV="production"',
                f"--outfile={out / 'main.js'}",
                "--log-level=warning",
            ],
            cwd=CLIENT,
            check=True,
            timeout=120,
        )
        shutil.copy(CLIENT / "page" / "index.html", out / "index.html")
    return root


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser, bundles: Path) -> Iterator[BrowserContext]:
    """A browser context that is served the pages at `/ai-sdk-page/v<major>/` of any origin."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)

    def serve(route: Route) -> None:
        name = urlsplit(route.request.url).path.removeprefix(PAGE_PATH)
        route.fulfill(path=bundles / (name + "index.html" if name.endswith("/") else name))

    context.route(lambda url: urlsplit(url).path.startswith(PAGE_PATH), serve)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def start_demo(make_uvicorn_server: Callable[..., UvicornServer]) -> Callable[[int], UvicornServer]:
    def start(tokens_per_s: int) -> UvicornServer:
        return make_uvicorn_server(APP, env={"STREAMHUB_DEMO_TOKENS_PER_S": str(tokens_per_s)})

    return start


# -- the page and the server --------------------------------------------------------------------


def open_chat(page: Page, server: UvicornServer, chat_id: str, major: int = 7) -> int:
    """Open the chat's page (or reload it); returns the status of `useChat`'s resume request."""
    url = f"{server.base_url}{PAGE_PATH}v{major}/?chat={chat_id}"
    with page.expect_response(lambda r: r.url.endswith(f"/api/chat/{chat_id}/stream")) as resume:
        if page.url == url:
            page.reload()
        else:
            page.goto(url)
    return resume.value.status


def send(page: Page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()


def wait_for_status(page: Page, status: str) -> None:
    page.wait_for_function(
        "status => document.querySelector('#status')?.textContent === status",
        arg=status,
        timeout=TIMEOUT_MS,
    )


def wait_for_answer(page: Page, text: str) -> None:
    """Wait until the last assistant message shows exactly `text`, and the chat is ready."""
    page.wait_for_function(
        """text => {
            const answers = document.querySelectorAll('li[data-role=assistant]');
            return answers.length > 0 && answers[answers.length - 1].textContent === text
                && document.querySelector('#status').textContent === 'ready';
        }""",
        arg=text,
        timeout=TIMEOUT_MS,
    )


def wait_for_tokens(page: Page, prompt: str, count: int) -> None:
    """Wait until the answer on the page holds at least its first `count` tokens."""
    prefix = "".join(simulated_answer(prompt)[:count])
    page.wait_for_function(
        """prefix => [...document.querySelectorAll('li[data-role=assistant]')]
            .some(li => li.textContent.startsWith(prefix))""",
        arg=prefix,
        timeout=TIMEOUT_MS,
    )


def shown(page: Page) -> list[tuple[str, str]]:
    """(role, text) of every message on the page, in order."""
    items: list[list[str]] = page.eval_on_selector_all(
        "#messages li", "lis => lis.map(li => [li.dataset.role, li.textContent])"
    )
    return [(role, text) for role, text in items]


def saved(page: Page, chat_id: str) -> list[dict[str, Any]]:
    """The messages the page keeps in localStorage, as `useChat` has them."""
    messages: list[dict[str, Any]] = json.loads(
        page.evaluate("key => localStorage.getItem(key)", f"ai-sdk-chat:{chat_id}")
    )
    return messages


def without_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with their ids blanked: the page makes up the user's, the server the
    assistant's (its generation), so two runs differ there and nowhere else."""
    return [{**message, "id": ""} for message in messages]


def chat_status(server: UvicornServer, chat_id: str) -> str:
    response = httpx.get(f"{server.base_url}/api/chat/{chat_id}/status", trust_env=False)
    status: str = response.json()["status"]
    return status


def meter(server: UvicornServer) -> dict[str, int]:
    """The model's counter in the server: tokens generated, generations running."""
    counts: dict[str, int] = httpx.get(f"{server.base_url}/debug/tokens", trust_env=False).json()
    return counts


def full_text(prompt: str) -> str:
    return "".join(simulated_answer(prompt))


def posts(page: Page) -> list[str]:
    """Records the URL of every `POST` the page sends from now on."""
    sent: list[str] = []

    def record(request: Request) -> None:
        if request.method == "POST":
            sent.append(urlsplit(request.url).path)

    page.on("request", record)
    return sent


# -- the scenarios ------------------------------------------------------------------------------


@pytest.mark.parametrize("major", sorted(REACT_PACKAGES, reverse=True))
def test_reload_mid_answer_shows_the_whole_answer_once(
    page: Page, start_demo: Callable[[int], UvicornServer], major: int
) -> None:
    fast, slow = start_demo(1000), start_demo(TOKENS_PER_S)
    assert open_chat(page, fast, "uninterrupted", major) == 204
    send(page, PROMPT)
    wait_for_answer(page, full_text(PROMPT))
    uninterrupted = saved(page, "uninterrupted")

    assert open_chat(page, slow, "reloaded", major) == 204, "a new chat has nothing to resume"
    sent = posts(page)
    send(page, PROMPT)
    wait_for_tokens(page, PROMPT, 5)
    before = saved(page, "reloaded")
    assert before[-1]["role"] == "assistant"

    assert open_chat(page, slow, "reloaded", major) == 200, "the reload resumes the answer"

    wait_for_answer(page, full_text(PROMPT))
    assert shown(page) == [("user", PROMPT), ("assistant", full_text(PROMPT))]
    after = saved(page, "reloaded")
    assert after[-1]["id"] == before[-1]["id"], "the same message, replaced, not a second one"
    assert len(before[-1]["parts"][-1]["text"]) < len(full_text(PROMPT)), "reloaded too late"
    assert without_ids(after) == without_ids(uninterrupted)
    assert after[-1]["metadata"] == {"tokens": len(simulated_answer(PROMPT))}
    assert sent == ["/api/chat"], "the reload sent nothing again"
    assert chat_status(slow, "reloaded") == "done"


def test_stop_cancels_on_the_server_and_a_reload_restarts_nothing(
    page: Page, start_demo: Callable[[int], UvicornServer]
) -> None:
    server = start_demo(TOKENS_PER_S)
    assert open_chat(page, server, "stopped") == 204
    sent = posts(page)
    send(page, PROMPT)
    wait_for_tokens(page, PROMPT, 5)

    page.get_by_role("button", name="Stop").click()

    wait_for_status(page, "ready")
    assert wait_until(lambda: chat_status(server, "stopped") == "cancelled", timeout_s=10)
    assert wait_until(lambda: meter(server)["running"] == 0, timeout_s=10), meter(server)
    generated = meter(server)["generated"]
    assert 0 < generated < len(simulated_answer(PROMPT))
    [(_, question), (_, stopped_at)] = shown(page)
    assert question == PROMPT
    assert full_text(PROMPT).startswith(stopped_at)
    assert sent == ["/api/chat", "/api/chat/stopped/cancel"]

    assert open_chat(page, server, "stopped") == 204, "nothing runs: nothing to resume"

    wait_for_status(page, "ready")
    assert shown(page) == [("user", PROMPT), ("assistant", stopped_at)]
    # Let the server's own clock run for many pace periods: a whole second answer. Had the
    # stopped generator gone on, or the reload started another, the counter would hold more.
    probe = "Are you still there?"
    response = httpx.post(
        f"{server.base_url}/chat/probe", json={"text": probe}, timeout=30, trust_env=False
    )
    assert "event: done" in response.text
    assert meter(server) == {"generated": generated + len(simulated_answer(probe)), "running": 0}
    assert sent == ["/api/chat", "/api/chat/stopped/cancel"]
    assert chat_status(server, "stopped") == "cancelled"
