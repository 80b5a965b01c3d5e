"""`python -m example_app`: serve the demo chat with uvicorn on HOST:PORT (127.0.0.1:8000).

With the streams in Redis it also runs the tool worker (`example_app/tool_worker.py`), the
process that joins the agent mode's answers as their calculator, and stops it on exit.
"""

import contextlib
import copy
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from example_app.settings import Settings


def log_config() -> dict[str, Any]:
    """Uvicorn's logging, with the app's and the library's INFO lines in the same format
    (the app logs where it keeps its streams at startup)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    for name in ("example_app", "fastapi_streamhub"):
        config["loggers"][name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


@contextlib.contextmanager
def tool_worker(settings: Settings) -> Iterator[None]:
    """The tool worker as a child process while the app runs (only with Redis: on the
    in-memory backend the calculator joins from a task of the app's own process)."""
    if settings.redis_url is None:
        yield
        return
    child = subprocess.Popen([sys.executable, "-m", "example_app.tool_worker"])
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    """Serve `example_app.app:app`; the app reads the rest of its settings itself."""
    settings = Settings.from_env()
    with tool_worker(settings):
        uvicorn.run(
            "example_app.app:app", host=settings.host, port=settings.port, log_config=log_config()
        )


if __name__ == "__main__":
    main()
