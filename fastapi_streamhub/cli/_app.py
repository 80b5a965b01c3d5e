"""The `streamhub` command: look at and act on the streams of a running app from a shell.

Each command opens a hub on the app's storage (`_connect.py`), does one thing through
the hub's own API (`status`, `cancel`, `result`, `remove`, `subscribe`) or the backend
contract (listing), prints it (`_render.py`), and exits with a code a script can test.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import click

from .._cursor import Cursor
from .._errors import (
    BackendUnavailableError,
    InvalidCursorError,
    InvalidKeyError,
    SessionNotFoundError,
)
from .._events import StreamEvent
from .._hub import StreamHub
from .._keys import validate_key
from . import _render as render
from ._connect import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    Settings,
    open_hub,
    quiet_library_logs,
    unreachable,
)
from ._inventory import SHOWN_ORDER, session_row, session_rows, stats_of
from ._tail import Tail

_EXIT_INTERRUPTED = 130

Command = Callable[[StreamHub, Settings], Awaitable[None]]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="STREAMHUB_REDIS_URL",
    metavar="URL",
    help="The app's Redis: redis://, rediss://, unix://, redis+sentinel://, "
    "redis+cluster:// [env: STREAMHUB_REDIS_URL].",
)
@click.option(
    "--prefix",
    envvar="STREAMHUB_KEY_PREFIX",
    default="streamhub:",
    show_default=True,
    help="The app's key prefix (`prefix=` of StreamHub.from_url) [env: STREAMHUB_KEY_PREFIX].",
)
@click.option(
    "--timeout",
    "socket_timeout_s",
    envvar="STREAMHUB_SOCKET_TIMEOUT_S",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds one Redis command may take [env: STREAMHUB_SOCKET_TIMEOUT_S].",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the library's own log lines.")
@click.version_option(package_name="fastapi-streamhub")
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, prefix: str, socket_timeout_s: float, verbose: bool
) -> None:
    """Look at and act on the resumable streams of a running app, in its Redis."""
    quiet_library_logs(verbose)
    ctx.obj = (url, prefix, socket_timeout_s)


def _settings(ctx: click.Context) -> Settings:
    url, prefix, socket_timeout_s = ctx.find_root().obj
    if not url:
        raise click.UsageError("no Redis URL: pass --url or set STREAMHUB_REDIS_URL")
    if "{" in prefix or "}" in prefix:
        raise click.BadParameter("the key prefix may not contain '{' or '}'", param_hint="--prefix")
    return Settings(url=url, prefix=prefix, socket_timeout_s=socket_timeout_s)


def _run(ctx: click.Context, command: Command) -> None:
    """Run `command` on a started hub; every failure becomes a message and an exit code."""
    settings = _settings(ctx)
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
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()

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


def _note(message: str) -> None:
    click.echo(f"streamhub: {message}", err=True)


def _print_json(value: Any) -> None:
    click.echo(render.dump(value))


@cli.command("ls")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(SHOWN_ORDER),
    help="Only streams of this status (repeat for several).",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Sessions read from storage at most.",
)
@json_option
@click.pass_context
def list_streams(
    ctx: click.Context, statuses: tuple[str, ...], limit: int, scan_limit: int, as_json: bool
) -> None:
    """Running and recent streams: running first, then the latest started."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        rows = await session_rows(hub.backend, scan_limit=scan_limit)
        rows = [row for row in rows if not statuses or row.status in statuses][:limit]
        if as_json:
            now = time.time()
            _print_json([row.as_json(now) for row in rows])
        elif rows:
            render.stdout_console().print(render.sessions_table(rows))
        else:
            _note(f"no streams in {settings.where}")

    _run(ctx, command)


@cli.command()
@click.argument("key")
@json_option
@click.pass_context
def status(ctx: click.Context, key: str, as_json: bool) -> None:
    """A stream's state: status, generation, events, owner, times, and how it ended."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        row = await session_row(hub.backend, validate_key(key))
        if row is None:
            raise SessionNotFoundError(key)
        if as_json:
            _print_json(row.as_json(time.time(), with_end=True))
        else:
            click.echo(render.pairs_text(render.status_pairs(row)))

    _run(ctx, command)


@cli.command()
@click.argument("key")
@click.option(
    "--from",
    "after",
    metavar="CURSOR",
    help="Start after this event id (`<generation>:<seq>`); default: the generation's start.",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing events as they come, across outages and new generations (Ctrl-C ends).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: id, event, data.")
@click.pass_context
def tail(ctx: click.Context, key: str, after: str | None, follow: bool, as_json: bool) -> None:
    """Print a stream's events: those stored, or with --follow, as they come."""
    cursor = _cursor(after)

    def emit(event: StreamEvent) -> None:
        click.echo(render.event_json(event) if as_json else render.event_line(event))

    async def command(hub: StreamHub, settings: Settings) -> None:
        reader = Tail(hub, validate_key(key), after=cursor, emit=emit, note=_note)
        await (reader.follow() if follow else reader.snapshot())

    _run(ctx, command)


def _cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        return Cursor.parse(text)
    except InvalidCursorError as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from exc


@cli.command()
@click.argument("key")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds to wait for the producer to confirm it stopped.",
)
@json_option
@click.pass_context
def cancel(ctx: click.Context, key: str, wait: float, as_json: bool) -> None:
    """Cancel a running stream, wherever its producer runs."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        outcome = await hub.cancel(validate_key(key), wait=wait or None)
        if outcome is None:
            raise SessionNotFoundError(key)
        if as_json:
            _print_json(render.cancel_json(outcome))
        elif outcome.cancelled:
            stopped = (
                "its producer stopped" if outcome.stopped else "its producer has not confirmed yet"
            )
            click.echo(f"cancelled {key!r} (generation {outcome.status.generation}); {stopped}")
        else:
            click.echo(f"{key!r} had already ended ({outcome.status.status}); nothing to cancel")

    _run(ctx, command)


@cli.command()
@click.argument("key")
@click.option("--generation", help="Only if this generation is still the key's current one.")
@click.option("--text", "text_only", is_flag=True, help="Print the answer's text only.")
@json_option
@click.pass_context
def result(
    ctx: click.Context, key: str, generation: str | None, text_only: bool, as_json: bool
) -> None:
    """A generation's answer as storage holds it: text, other events, how it ended."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        found = await hub.result(validate_key(key), generation=generation)
        if found is None:
            if generation is not None and await hub.status(key) is not None:
                raise CliError(
                    f"generation {generation!r} is not the current one of {key!r}", EXIT_NOT_FOUND
                )
            raise SessionNotFoundError(key)
        if as_json:
            _print_json(render.result_json(found))
        elif text_only:
            click.echo(found.text)
        else:
            click.echo(render.pairs_text(render.result_pairs(found)))
            click.echo(render.RULE)
            click.echo(found.text)

    _run(ctx, command)


@cli.command("rm")
@click.argument("key")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def remove(ctx: click.Context, key: str, yes: bool, as_json: bool) -> None:
    """Delete a stream: cancel its running generation, then remove everything stored."""
    validate_key(key)
    if not yes:
        click.confirm(
            f"Delete stream {key!r} and everything stored under it?", abort=True, err=True
        )

    async def command(hub: StreamHub, settings: Settings) -> None:
        if not await hub.remove(key):
            raise SessionNotFoundError(key)
        if as_json:
            _print_json({"key": key, "removed": True})
        else:
            click.echo(f"removed {key!r}")

    _run(ctx, command)


@cli.command()
@click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Sessions read from storage at most.",
)
@json_option
@click.pass_context
def stats(ctx: click.Context, scan_limit: int, as_json: bool) -> None:
    """Figures over every stream storage holds: by status, events, producing instances."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        figures = stats_of(await session_rows(hub.backend, scan_limit=scan_limit))
        if as_json:
            _print_json(figures.as_json())
        else:
            click.echo(render.stats_text(figures))

    _run(ctx, command)
