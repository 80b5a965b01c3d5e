"""The demo page in a real browser: Debian's Chromium, driven by Playwright, against real uvicorn
processes running `example_app`.

Every check compares the page's answer with `simulated_answer(prompt)` character for character:
equal text means no token was skipped and none was shown twice. Every wait is bounded and waits
for a condition (a page state, a stored cursor, a server counter), never for a fixed time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from example_app.llm import simulated_answer
from tests.support._process import wait_until
from tests.support.redis_server import RedisServer
from tests.support.taskiq_worker import TaskiqWorker
from tests.support.uvicorn_server import UvicornServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
APP = "example_app.app:app"
# Slow enough to act mid-answer (an answer is about 100 tokens), fast enough for a quick suite.
TOKENS_PER_S = 20
STORAGE_KEY = "streamhub-demo:chat"
ANSWER_TIMEOUT_MS = 30_000
PROMPT = "How do résumé-proof streams work?  Ünïcödé, “quotes” and 🚀 included."


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(ANSWER_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def start_demo(make_uvicorn_server: Callable[..., UvicornServer]) -> Callable[..., UvicornServer]:
    """Start the example app as a user runs it (env vars as keywords), at the test pace."""

    def start(**env: str) -> UvicornServer:
        return make_uvicorn_server(
            APP, env={"STREAMHUB_DEMO_TOKENS_PER_S": str(TOKENS_PER_S), **env}
        )

    return start


@pytest.fixture
def server(start_demo: Callable[..., UvicornServer]) -> UvicornServer:
    return start_demo()


# -- reading the page and the server -----------------------------------------------------------


def stored_chat(page: Page) -> dict[str, Any]:
    """The page's saved record: chat id, cursor (generation, seq), rendered text, state."""
    record: dict[str, Any] = json.loads(page.evaluate(f"localStorage.getItem('{STORAGE_KEY}')"))
    return record


def answer(page: Page) -> str:
    """The answer exactly as rendered (textContent: no whitespace normalisation)."""
    text: str = page.locator("#answer").evaluate("el => el.textContent")
    return text


def send(page: Page, prompt: str) -> None:
    page.get_by_label("Your message").fill(prompt)
    page.get_by_role("button", name="Send").click()


def wait_for_seq(page: Page, seq: int) -> None:
    """Wait until the page has rendered (and saved) the event with sequence number `seq`."""
    page.wait_for_function(
        "([key, seq]) => (JSON.parse(localStorage.getItem(key))?.seq ?? 0) >= seq",
        arg=[STORAGE_KEY, seq],
        timeout=ANSWER_TIMEOUT_MS,
    )


def expect_state(page: Page, state: str) -> None:
    expect(page.locator("#state")).to_have_text(state, timeout=ANSWER_TIMEOUT_MS)


def meter(server: UvicornServer) -> dict[str, int]:
    """The server's token counter: tokens generated, generations running."""
    counts: dict[str, int] = httpx.get(f"{server.base_url}/debug/tokens", trust_env=False).json()
    return counts


def full_text(prompt: str) -> str:
    return "".join(simulated_answer(prompt))


def answer_events(prompt: str) -> int:
    """Events of a complete run: the prompt, one per token, and `done`."""
    return len(simulated_answer(prompt)) + 2


# -- the scenarios -----------------------------------------------------------------------------


def test_reload_mid_answer_resumes_from_the_cursor(page: Page, server: UvicornServer) -> None:
    stream_requests: list[str] = []
    page.on("request", lambda r: stream_requests.append(r.url) if "/stream" in r.url else None)
    page.goto(server.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 6)
    before = stored_chat(page)

    page.reload()

    expect_state(page, "done")
    assert answer(page) == full_text(PROMPT)
    assert page.locator("#question").text_content() == PROMPT
    after = stored_chat(page)
    assert after["generation"] == before["generation"]
    assert before["seq"] < answer_events(PROMPT) - 1, "the reload came after the answer ended"
    # The page asked for what came after its cursor, not for the whole answer again.
    cursor_seq = int(stream_requests[0].rpartition("%3A")[2])
    assert f"last_event_id={before['generation']}%3A" in stream_requests[0]
    assert cursor_seq >= before["seq"]


def test_stop_mid_answer_stops_the_generator(page: Page, server: UvicornServer) -> None:
    page.goto(server.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 5)

    page.get_by_role("button", name="Stop").click()

    expect_state(page, "cancelled")
    assert wait_until(lambda: meter(server)["running"] == 0, timeout_s=10), meter(server)
    generated = meter(server)["generated"]
    assert 0 < generated < len(simulated_answer(PROMPT))
    shown = answer(page)
    assert full_text(PROMPT).startswith(shown)
    # Let the server's own clock run for many pace periods: a whole second answer. Had the
    # stopped generator kept going, the counter would hold more than these two runs.
    probe = "Are you still there?"
    response = httpx.post(
        f"{server.base_url}/chat/probe", json={"text": probe}, timeout=30, trust_env=False
    )
    assert "event: done" in response.text
    assert meter(server) == {"generated": generated + len(simulated_answer(probe)), "running": 0}
    assert answer(page) == shown
    expect_state(page, "cancelled")


def replayed_events(server: UvicornServer, chat_id: str) -> int:
    """How many events a resume from the start sends (fewer once compacted)."""
    body = httpx.get(f"{server.base_url}/chat/{chat_id}/stream", trust_env=False).text
    return body.count("\nid: ") + body.startswith("id: ")


def test_reload_after_stop_shows_the_stopped_answer_as_stopped(
    browser: Browser, page: Page, start_demo: Callable[..., UvicornServer]
) -> None:
    server = start_demo(STREAMHUB_COMPACT_AFTER_S="0")
    page.goto(server.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 5)
    page.get_by_role("button", name="Stop").click()
    expect_state(page, "cancelled")
    meta = page.locator("#answer-meta")
    expect(meta).to_have_text("Stopped by you")
    shown = answer(page)
    assert shown and full_text(PROMPT).startswith(shown)

    page.reload()

    expect_state(page, "cancelled")
    expect(meta).to_have_text("Stopped by you")
    assert answer(page) == shown
    # Compacted: the prompt, the partial answer as one event, and `cancelled`.
    chat_id = stored_chat(page)["chatId"]
    assert wait_until(lambda: replayed_events(server, chat_id) == 3, timeout_s=10)
    fresh = browser.new_context()  # no saved record: the page reads it all from the server
    try:
        other = fresh.new_page()
        other.goto(f"{server.base_url}/?chat={chat_id}")
        expect_state(other, "cancelled")
        expect(other.locator("#answer-meta")).to_have_text("Stopped by you")
        assert answer(other) == shown
    finally:
        fresh.close()


def test_second_instance_sharing_redis_shows_the_full_answer(
    context: BrowserContext,
    page: Page,
    redis_server: RedisServer,
    start_demo: Callable[..., UvicornServer],
) -> None:
    server_a = start_demo(STREAMHUB_REDIS_URL=redis_server.url)
    server_b = start_demo(STREAMHUB_REDIS_URL=redis_server.url)
    page.goto(server_a.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 4)
    chat_id = stored_chat(page)["chatId"]

    page_b = context.new_page()  # another origin (port), so its own localStorage
    page_b.goto(f"{server_b.base_url}/?chat={chat_id}")

    expect_state(page_b, "done")
    assert answer(page_b) == full_text(PROMPT)
    assert page_b.locator("#question").text_content() == PROMPT
    expect_state(page, "done")
    assert answer(page) == full_text(PROMPT)
    assert meter(server_b)["generated"] == 0, "instance B must not generate"


def test_network_cut_mid_answer_completes_without_gap_or_duplicate(
    context: BrowserContext, page: Page, server: UvicornServer
) -> None:
    page.goto(server.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 5)

    context.set_offline(True)
    expect_state(page, "reconnecting")
    shown = stored_chat(page)["seq"]
    # Offline until the server has generated tokens the page has not seen: they must come
    # back through the resume, after the ones the page already has and before the live ones.
    assert wait_until(lambda: meter(server)["generated"] > shown + 5, timeout_s=10)
    assert stored_chat(page)["seq"] == shown
    context.set_offline(False)

    expect_state(page, "done")
    assert answer(page) == full_text(PROMPT)


def test_with_a_worker_an_instance_restarted_mid_answer_shows_it_whole_after_reload(
    page: Page, redis_server: RedisServer, start_demo: Callable[..., UvicornServer]
) -> None:
    env = {"STREAMHUB_REDIS_URL": redis_server.url, "STREAMHUB_DEMO_TOKENS_PER_S": "20"}
    with TaskiqWorker("example_app.worker:broker", env=env):
        server = start_demo(STREAMHUB_REDIS_URL=redis_server.url, STREAMHUB_DEMO_WORKER="1")
        page.goto(server.base_url)
        send(page, PROMPT)
        wait_for_seq(page, 8)
        before = stored_chat(page)

        server.kill()
        server.restart()
        page.reload()

        expect_state(page, "done")
        assert answer(page) == full_text(PROMPT)
        assert stored_chat(page)["generation"] == before["generation"]
        assert before["seq"] < answer_events(PROMPT) - 1, "the restart came after the end"
        assert meter(server)["generated"] == 0, "the worker generated the answer"


def test_reload_after_the_end_and_after_a_new_run_elsewhere(
    page: Page, start_demo: Callable[..., UvicornServer]
) -> None:
    server = start_demo(STREAMHUB_DEMO_TOKENS_PER_S="200")  # nothing here happens mid-answer
    page.goto(server.base_url)
    send(page, PROMPT)
    expect_state(page, "done")
    first_run = stored_chat(page)

    with page.expect_response(lambda r: "/stream?" in r.url) as first:
        page.reload()
    assert first.value.status == 204, "a cursor at the terminal event has nothing more to read"
    expect_state(page, "done")
    assert answer(page) == full_text(PROMPT)

    # The next turn of the same chat starts elsewhere (another tab, another device).
    second_prompt = "And what happens on the next turn?"
    url = f"{server.base_url}/chat/{first_run['chatId']}"
    with httpx.stream("POST", url, json={"text": second_prompt}, trust_env=False) as response:
        assert response.status_code == 200
    with page.expect_response(lambda r: "/stream?" in r.url) as second:
        page.reload()
    assert second.value.status == 200

    expect_state(page, "done")
    assert answer(page) == full_text(second_prompt), "the old answer is gone, the new one whole"
    assert page.locator("#question").text_content() == second_prompt
    assert stored_chat(page)["generation"] != first_run["generation"]


# -- the page's SSE parser ---------------------------------------------------------------------

PARSE_JS = """async (chunks) => {
    const { SseParser } = await import("/static/sse.js");
    const events = [];
    const retries = [];
    const parser = new SseParser({
        onEvent: (event) => events.push(event),
        onRetry: (ms) => retries.push(ms),
    });
    for (const chunk of chunks) parser.feed(chunk);
    return { events, retries };
}"""

STREAM = (
    "retry: 1500\r\n"
    ": keep-alive comment\r\n"
    'id: g:1\r\ndata: "a\\r\\nb"\r\n\r\n'
    "id: g:2\revent: tool\rdata:{}\r\r"
    "data: two\ndata:  lines \n\n"
    "event: ignored\nid: g:3\n\n"
    "retry: soon\nid: bad\0id\nunknown: field\ndata\n\n"
    "id\ndata: last\n\n"
    "data: cut off at the end"
)
EXPECTED = {
    "retries": [1500],
    "events": [
        {"type": "message", "data": '"a\\r\\nb"', "lastEventId": "g:1"},
        {"type": "tool", "data": "{}", "lastEventId": "g:2"},
        {"type": "message", "data": "two\n lines ", "lastEventId": "g:2"},
        {"type": "message", "data": "", "lastEventId": "g:3"},
        {"type": "message", "data": "last", "lastEventId": ""},
    ],
}


@pytest.fixture
def parser_page(page: Page, server: UvicornServer) -> Page:
    page.goto(server.base_url)
    return page


def test_sse_parser_follows_the_spec(parser_page: Page) -> None:
    assert parser_page.evaluate(PARSE_JS, [STREAM]) == EXPECTED


def test_sse_parser_is_indifferent_to_chunk_boundaries(parser_page: Page) -> None:
    splits = [[STREAM[:i], STREAM[i:]] for i in range(len(STREAM) + 1)]
    results = parser_page.evaluate(
        f"async (splits) => Promise.all(splits.map(({PARSE_JS})))", splits
    )
    assert all(result == EXPECTED for result in results)
    assert parser_page.evaluate(PARSE_JS, list(STREAM)) == EXPECTED
