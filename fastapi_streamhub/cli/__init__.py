"""The `streamhub` command line (the `cli` extra: `pip install fastapi-streamhub[cli]`).

See docs/cli.md for the reference. `main` is the console script's entry point.
"""

from ._app import cli


def main() -> None:
    """Run the `streamhub` command."""
    cli(prog_name="streamhub")


__all__ = ["main"]
