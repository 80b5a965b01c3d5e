"""The `streamhub` command: look at and act on the streams of a running app from a shell.

Each command runs on a hub started on the app's storage (`_runner.py`, `_connect.py`),
does one thing through the hub's own API (`status`, `cancel`, `result`, `remove`,
`subscribe`) or the backend contract (listing, `_inventory.py`), prints it
(`_render.py`), and exits with a code a script can test.
"""

from __future__ import annotations

import json
import time

import click

from .._cursor import Cursor
from .._errors import (
    InboxFullError,
    InvalidCursorError,
    MessageTooLargeError,
    NotRunningError,
    SessionNotFoundError,
)
from .._events import StreamEvent
from .._hub import StreamHub
from .._keys import validate_key
from . import _render as render
from ._connect import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    Settings,
    quiet_library_logs,
)
from ._inventory import SHOWN_ORDER, session_row, session_rows, stats_of, with_sources
from ._runner import note, print_json, run
from ._tail import Tail

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
scan_limit_option = click.option(
    "--scan-limit",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Sessions read from storage at most.",
)


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


@cli.command("ls")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(SHOWN_ORDER),
    help="Only streams of this status (repeat for several).",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@scan_limit_option
@json_option
@click.pass_context
def list_streams(
    ctx: click.Context, statuses: tuple[str, ...], limit: int, scan_limit: int, as_json: bool
) -> None:
    """Running and recent streams: running first, then the latest started."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        rows = await session_rows(hub.backend, scan_limit=scan_limit)
        rows = [row for row in rows if not statuses or row.status in statuses][:limit]
        rows = await with_sources(hub.backend, rows)
        if as_json:
            now = time.time()
            print_json([row.as_json(now) for row in rows])
        elif rows:
            render.stdout_console().print(render.sessions_table(rows))
        else:
            note(f"no streams in {settings.where}")

    run(ctx, command)


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
            print_json(row.as_json(time.time(), with_end=True))
        else:
            click.echo(render.pairs_text(render.status_pairs(row)))

    run(ctx, command)


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
        reader = Tail(hub, validate_key(key), after=cursor, emit=emit, note=note)
        await (reader.follow() if follow else reader.snapshot())

    run(ctx, command)


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
            print_json(render.cancel_json(outcome))
        elif outcome.cancelled:
            stopped = (
                "its producer stopped" if outcome.stopped else "its producer has not confirmed yet"
            )
            click.echo(f"cancelled {key!r} (generation {outcome.status.generation}); {stopped}")
        else:
            click.echo(f"{key!r} had already ended ({outcome.status.status}); nothing to cancel")

    run(ctx, command)


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
            print_json(render.result_json(found))
        elif text_only:
            click.echo(found.text)
        else:
            click.echo(render.pairs_text(render.result_pairs(found)))
            click.echo(render.RULE)
            click.echo(found.text)

    run(ctx, command)


@cli.command()
@click.argument("key")
@click.argument("message")
@click.option(
    "--source",
    default="cli",
    show_default=True,
    help="Who sent it, as the generator and the stream's `steer` event see it.",
)
@json_option
@click.pass_context
def steer(ctx: click.Context, key: str, message: str, source: str, as_json: bool) -> None:
    """Send MESSAGE (JSON) to the running generation of a stream, wherever it runs.

    The generator gets it from `messages()` or `take_messages()`, and the stream records
    it as a `steer` event. A plain word must be quoted as JSON: '"stop"'.
    """
    value = _message(message)

    async def command(hub: StreamHub, settings: Settings) -> None:
        try:
            steered = await hub.steer(validate_key(key), value, source=source)
        except (NotRunningError, InboxFullError) as exc:
            raise CliError(f"the message was refused: {exc}", EXIT_REFUSED) from exc
        except MessageTooLargeError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        if as_json:
            print_json({"key": key, "id": steered.id, "generation": steered.generation})
        else:
            click.echo(f"steered {key!r} (generation {steered.generation}): message {steered.id}")

    run(ctx, command)


def _message(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"not JSON ({exc}); quote a plain word as JSON: '\"stop\"'", param_hint="MESSAGE"
        ) from exc


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
            print_json({"key": key, "removed": True})
        else:
            click.echo(f"removed {key!r}")

    run(ctx, command)


@cli.command()
@scan_limit_option
@json_option
@click.pass_context
def stats(ctx: click.Context, scan_limit: int, as_json: bool) -> None:
    """Figures over every stream storage holds: by status, events, producing instances."""

    async def command(hub: StreamHub, settings: Settings) -> None:
        figures = stats_of(await session_rows(hub.backend, scan_limit=scan_limit))
        if as_json:
            print_json(figures.as_json())
        else:
            click.echo(render.stats_text(figures))

    run(ctx, command)
