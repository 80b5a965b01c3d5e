"""How one command runs: settings checked, a hub started, Ctrl-C honoured, and every
failure turned into one line on stderr and an exit code (see `_connect.py`)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import click

from .._errors import (
    BackendUnavailableError,
    InvalidCursorError,
    InvalidKeyError,
    SessionNotFoundError,
)
from .._hub import StreamHub
from . import _render as render
from ._connect import EXIT_NOT_FOUND, EXIT_USAGE, CliError, Settings, open_hub, unreachable

_EXIT_INTERRUPTED = 130

Command = Callable[[StreamHub, Settings], Awaitable[None]]


def settings_of(ctx: click.Context) -> Settings:
    url, prefix, socket_timeout_s = ctx.find_root().obj
    if not url:
        raise click.UsageError("no Redis URL: pass --url or set STREAMHUB_REDIS_URL")
    if "{" in prefix or "}" in prefix:
        raise click.BadParameter("the key prefix may not contain '{' or '}'", param_hint="--prefix")
    return Settings(url=url, prefix=prefix, socket_timeout_s=socket_timeout_s)


def run(ctx: click.Context, command: Command) -> None:
    """Run `command` on a started hub; every failure becomes a message and an exit code."""
    settings = settings_of(ctx)
    try:
        interrupted = anyio.run(_execute, settings, command)
    except CliError as exc:
        _fail(exc.message, exc.code)
    except BackendUnavailableError as exc:
        error = unreachable(settings, exc)
        _fail(error.message, error.code)
    except (InvalidKeyError, InvalidCursorError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        interrupted = True
    if interrupted:
        sys.exit(_EXIT_INTERRUPTED)


async def _execute(settings: Settings, command: Command) -> bool:
    """Run `command` until it returns or SIGINT/SIGTERM (Ctrl-C) stops it; True if stopped.

    The signals cancel the command through a cancel scope, which every await inside the
    hub honours, and the hub then shuts down as in an app."""
    interrupted = False

    async def stop_on_signals(scope: anyio.CancelScope) -> None:
        nonlocal interrupted
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    scope.cancel()
        except NotImplementedError:  # Windows: Ctrl-C arrives as KeyboardInterrupt
            return

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(stop_on_signals, group.cancel_scope)
        try:
            async with open_hub(settings) as hub:
                try:
                    await command(hub, settings)
                except SessionNotFoundError as exc:
                    raise await _not_found(hub, settings, exc.key) from exc
        except Exception as exc:  # raised below, not wrapped in an exception group
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return interrupted


def _fail(message: str, code: int) -> None:
    click.echo(f"streamhub: error: {message}", err=True)
    sys.exit(code)


async def _not_found(hub: StreamHub, settings: Settings, key: str) -> CliError:
    message = f"no stream under key {key!r} in {settings.where}"
    try:
        empty = not await hub.backend.session_keys(limit=1)
    except BackendUnavailableError:
        empty = False
    if empty:
        message += (
            "; no stream at all is stored under this prefix: is it the app's "
            "(--prefix, STREAMHUB_KEY_PREFIX)?"
        )
    return CliError(message, EXIT_NOT_FOUND)


def note(message: str) -> None:
    click.echo(f"streamhub: {message}", err=True)


def print_json(value: Any) -> None:
    click.echo(render.dump(value))
