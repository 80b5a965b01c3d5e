"""Steering in the demo page, in Chromium: a steer sent from a second tab, connected to the
other instance, changes the answer being generated on the first, and both tabs show it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from example_app.llm import simulated_answer
from example_app.steering import simulated_steered_answer
from tests.support.redis_server import RedisServer
from tests.support.uvicorn_server import UvicornServer
from tests.test_browser import (  # noqa: F401 - fixtures
    PROMPT,
    answer,
    browser,
    context,
    expect_state,
    meter,
    page,
    playwright,
    send,
    start_demo,
    stored_chat,
    wait_for_seq,
)

pytestmark = pytest.mark.browser

STEER = "Shorter, please"


def test_a_steer_from_a_tab_on_the_other_instance_changes_the_answer_in_both(
    context: BrowserContext,  # noqa: F811
    page: Page,  # noqa: F811
    redis_server: RedisServer,
    start_demo: Callable[..., UvicornServer],  # noqa: F811
) -> None:
    server_a = start_demo(STREAMHUB_REDIS_URL=redis_server.url)
    server_b = start_demo(STREAMHUB_REDIS_URL=redis_server.url)
    page.goto(server_a.base_url)
    send(page, PROMPT)
    wait_for_seq(page, 6)
    chat_id = stored_chat(page)["chatId"]

    page_b = context.new_page()  # another origin (port), so its own localStorage
    page_b.goto(f"{server_b.base_url}/?chat={chat_id}")
    expect_state(page_b, "streaming")
    page_b.get_by_label("Steer the answer while it streams").fill(STEER)
    page_b.get_by_role("button", name="Steer").click()

    expect_state(page, "done")
    expect_state(page_b, "done")
    steered = "".join(simulated_steered_answer([STEER]))
    text = answer(page)
    assert text.endswith(steered), text
    said = text.removesuffix(steered)
    tokens = simulated_answer(PROMPT)
    count = next(n for n in range(len(tokens) + 1) if "".join(tokens[:n]) == said)
    assert 6 <= count < len(tokens), "the steer changed the answer mid-way"
    assert answer(page_b) == text
    for tab in (page, page_b):
        expect(tab.locator("#steers li")).to_have_text([f"↪ steered: “{STEER}”"])
        expect(tab.locator("#steer")).to_be_hidden()
    assert meter(server_b)["generated"] == 0, "instance B must not generate"

    page_b.reload()
    expect_state(page_b, "done")
    assert answer(page_b) == text
    expect(page_b.locator("#steers li")).to_have_text([f"↪ steered: “{STEER}”"])
