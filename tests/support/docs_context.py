"""The names a documentation page's Python samples may use without defining them.

README.md and every page not listed in `CONTEXTS` get none: their samples must be
self-contained. The quickstart page's samples build on the quickstart's code, and the
FAQ's, the security page's and the AI SDK page's also call stand-ins for the reader's
own code (`llm`, the model client; `require_user`, an authentication dependency; ...),
as the FAQ says at its top. Every call returns fresh objects, so each sample gets its
own hub and app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel

from fastapi_streamhub import StreamHub, resumable_stream

#: What every stand-in user is called, and what chat ids start with in the docs' tests.
USER_ID = "alice"


class Prompt(BaseModel):
    """The quickstart's request body."""

    text: str


@dataclass(frozen=True)
class User:
    """What `require_user` stores in `request.state.user`."""

    id: str


@dataclass
class FakeLLM:
    """`llm`: a model client whose answer is the prompt's words, one token each."""

    usage: dict[str, int] = field(default_factory=lambda: {"tokens": 3})

    async def stream(self, text: str, **options: Any) -> AsyncIterator[str]:
        """Yield each word of `text` with a trailing space (options such as `user=` are
        accepted and ignored)."""
        for word in text.split():
            yield word + " "


@dataclass
class Session:
    """`Session`: a database session opened with `async with Session() as session`."""

    saved: list[tuple[Any, ...]] = field(default_factory=list)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def save(self, *values: Any) -> None:
        """Record `values` (a real session would write them)."""
        self.saved.append(values)


class Pool:
    """What `make_pool()` yields: a connection pool that lives as long as the app."""


@asynccontextmanager
async def make_pool() -> AsyncIterator[Pool]:
    """Open a pool for the app's lifetime."""
    yield Pool()


def require_user(request: Request) -> User:
    """The authentication dependency: everyone is `USER_ID` here."""
    user = User(USER_ID)
    request.state.user = user
    return user


def current_user(request: Request) -> User:
    """The user a request is from."""
    return User(USER_ID)


class Chats:
    """`chats`: the app's store of chats; `USER_ID` owns them all."""

    async def owner(self, chat_id: str) -> str:
        """The id of the user who owns `chat_id`."""
        return USER_ID


def quickstart() -> dict[str, Any]:
    """The quickstart's imports, `hub`, `app` and `Prompt`: its code before the route."""
    hub = StreamHub()
    return {
        "AsyncIterator": AsyncIterator,
        "BaseModel": BaseModel,
        "FastAPI": FastAPI,
        "StreamHub": StreamHub,
        "resumable_stream": resumable_stream,
        "hub": hub,
        "app": FastAPI(lifespan=hub.lifespan),
        "Prompt": Prompt,
    }


def with_stand_ins() -> dict[str, Any]:
    """The quickstart's names, the imports the FAQ leaves out, and the stand-ins."""
    return {
        **quickstart(),
        "Annotated": Annotated,
        "Any": Any,
        "APIRouter": APIRouter,
        "Depends": Depends,
        "Request": Request,
        "asynccontextmanager": asynccontextmanager,
        "llm": FakeLLM(),
        "Session": Session,
        "Pool": Pool,
        "make_pool": make_pool,
        "require_user": require_user,
        "current_user": current_user,
        "chats": Chats(),
    }


CONTEXTS: dict[str, Callable[[], dict[str, Any]]] = {
    "docs/quickstart.md": quickstart,
    "docs/faq.md": with_stand_ins,
    "docs/security.md": with_stand_ins,
    "docs/ai-sdk.md": with_stand_ins,
}


def context_for(page: str) -> dict[str, Any]:
    """A fresh namespace for a sample of `page` (relative to the repository root)."""
    make = CONTEXTS.get(page)
    return {} if make is None else make()
