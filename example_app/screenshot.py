"""Take `docs/images/chat-mid-stream.png`: the demo page halfway through an answer.

Run `python -m example_app.screenshot` from the repository root (Playwright and Debian's
Chromium needed). It starts the demo itself, on a free port and at a slow pace, so that the
picture catches the answer mid-stream.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "chat-mid-stream.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROMPT = "Why does my chat answer survive a page reload?"
TOKENS_SHOWN = 45


def free_port() -> int:
    """A loopback port for the demo, so the script never collides with a running instance."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(url: str, server: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Poll `url` until the demo answers (bounded, and giving up if the process died)."""
    deadline = time.monotonic() + timeout_s
    while server.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(url, trust_env=False, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(f"the demo did not start serving {url}")


def take(url: str) -> None:
    """Ask a question and photograph the page once enough of the answer is on screen."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 880, "height": 760}, device_scale_factor=2)
        page.goto(url)
        page.get_by_label("Your message").fill(PROMPT)
        page.get_by_role("button", name="Send").click()
        page.wait_for_function(
            "n => (JSON.parse(localStorage.getItem('streamhub-demo:chat'))?.seq ?? 0) >= n",
            arg=TOKENS_SHOWN,
            timeout=30_000,
        )
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=OUTPUT, animations="disabled", caret="hide")
        browser.close()


def main() -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "STREAMHUB_DEMO_TOKENS_PER_S": "8"}
    env.pop("STREAMHUB_REDIS_URL", None)
    with subprocess.Popen([sys.executable, "-m", "example_app"], env=env) as server:
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/", server)
            take(f"http://127.0.0.1:{port}/")
        finally:
            server.terminate()
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
