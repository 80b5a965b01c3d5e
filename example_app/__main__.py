"""`python -m example_app`: serve the demo chat with uvicorn on HOST:PORT (127.0.0.1:8000)."""

import uvicorn

from example_app.settings import Settings


def main() -> None:
    """Serve `example_app.app:app`; the app reads the rest of its settings itself."""
    settings = Settings.from_env()
    uvicorn.run("example_app.app:app", host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
