"""Where the command line finds storage, and how it fails: settings from options or the
environment (the names the app's own settings use), a started hub, exit codes.

Exit codes: 0 done; 1 an unexpected failure; 2 a usage error (a bad option, URL, key,
cursor, or steering message); 3 no stream under the key; 4 storage unreachable; 5 the
stream refused a steering message (its generation is not running, or its inbox is full).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from .._errors import BackendUnavailableError
from .._hub import StreamHub

EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_REFUSED = 5

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


class CliError(Exception):
    """A failure the command line explains in one sentence, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def mask_password(url: str) -> str:
    """`url` with its password (if any) replaced by `****`, for messages."""
    return _PASSWORD.sub(r"\1****@", url)


@dataclass(frozen=True, slots=True)
class Settings:
    """What every command needs to find the app's streams."""

    url: str
    prefix: str = "streamhub:"
    socket_timeout_s: float = 5.0

    @property
    def where(self) -> str:
        return f"{mask_password(self.url)} (prefix {self.prefix!r})"


def quiet_library_logs(verbose: bool) -> None:
    """The hub's own warnings (a retry, a reconnection) are for app logs; a command
    reports what matters itself, unless asked for more."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.getLogger("fastapi_streamhub").setLevel(logging.CRITICAL)


@asynccontextmanager
async def open_hub(settings: Settings) -> AsyncIterator[StreamHub]:
    """A started hub on the app's storage, once storage answers.

    The hub produces nothing and registers no policy, so it runs no finish hook and
    compacts nothing: it reads, cancels and removes like any instance of the app.

    Raises:
        CliError: the URL is not valid (2), or storage does not answer (4).
    """
    try:
        hub = StreamHub.from_url(
            settings.url,
            prefix=settings.prefix,
            socket_timeout_s=settings.socket_timeout_s,
            max_connections=16,
            shutdown_grace_s=0.1,
        )
    except ValueError as exc:
        raise CliError(
            f"invalid Redis URL {mask_password(settings.url)}: {exc}", EXIT_USAGE
        ) from exc
    async with hub:
        try:
            with anyio.fail_after(settings.socket_timeout_s * 2):
                await hub.backend.ping()
        except (BackendUnavailableError, TimeoutError) as exc:
            raise unreachable(settings, exc) from exc
        yield hub


def unreachable(settings: Settings, exc: BaseException) -> CliError:
    reason = str(exc) or "no answer in time"
    return CliError(
        f"cannot reach Redis at {mask_password(settings.url)}: {reason}", EXIT_UNAVAILABLE
    )
