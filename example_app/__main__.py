"""`python -m example_app`: serve the demo chat with uvicorn on HOST:PORT (127.0.0.1:8000)."""

import copy
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


def main() -> None:
    """Serve `example_app.app:app`; the app reads the rest of its settings itself."""
    settings = Settings.from_env()
    uvicorn.run(
        "example_app.app:app", host=settings.host, port=settings.port, log_config=log_config()
    )


if __name__ == "__main__":
    main()
