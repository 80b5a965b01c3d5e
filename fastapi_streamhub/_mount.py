"""When the routes beside each `@resumable_stream` route are mounted, and how OpenAPI
sees them.

Decorators apply bottom-up: `@resumable_stream` runs before `@app.post(...)` has made
the route, so the decorator cannot mount anything. `mount_stream_routes(app)` does:
it mounts what is declared now, once per route and app, and wraps `app.openapi` so
that building the schema first mounts what was declared since. The hub calls it
from `init_app` and at startup through `_hooks.py`.

Routes are found with `fastapi.routing.iter_route_contexts` (FastAPI 0.137.2): since
0.137, FastAPI keeps an included router as one entry of `app.routes`, and this public
function lists every route as served, with the path, tags and dependencies of its
inclusion. Older FastAPI copies included routes into `app.routes` itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from ._hooks import on_wire_app
from ._hub import StreamHub
from ._routes import add_stream_routes
from ._spec import StreamSpec

_mounted: weakref.WeakKeyDictionary[FastAPI, set[tuple[str, frozenset[str]]]] = (
    weakref.WeakKeyDictionary()
)
"""Per app, the (path, methods) of the stream routes whose siblings exist."""

_FASTAPI_DEFAULT = "Successful Response"
"""FastAPI's description of an answer no one described (`response_description`)."""


def mount_stream_routes(app: FastAPI) -> None:
    """Mount the resume, cancel and status routes of `app`'s `@resumable_stream` routes.

    Mounts those declared so far, once each, and makes `app.openapi()` mount those
    declared later before it builds the schema, where it also documents every
    `@resumable_stream` route's `200` answer as `text/event-stream`.

    `hub.init_app(app)` and `hub.lifespan` call it. Call it yourself to get the full
    schema of an app started with `FastAPI(lifespan=hub.lifespan)` without starting
    it, for example to export `app.openapi()` in CI.

    Raises:
        ValueError: a key template names a parameter that is not a path parameter,
            or a route sets FastAPI's `response_class=EventSourceResponse`.
    """
    _mount_new(app)
    _add_policies(app)
    if not isinstance(app.openapi, _OpenAPI):
        app.openapi = _OpenAPI(app, app.openapi)  # type: ignore[method-assign]


on_wire_app(mount_stream_routes)


def _mount_new(app: FastAPI) -> bool:
    """Mount the siblings of the stream routes that have none yet; True if any."""
    done = _mounted.setdefault(app, set())
    added = False
    for route, spec in _stream_routes(app):
        identity = (route.path, frozenset(route.methods))
        if identity not in done:
            add_stream_routes(app, route, spec)
            done.add(identity)
            added = True
    return added


def _add_policies(app: FastAPI) -> None:
    """Register each stream route's own settings with the app's hub, once it has one, so
    that this instance can run the finish hooks another instance left owed, and counts
    readers for abandonment."""
    hub = getattr(app.state, "streamhub", None)
    if not isinstance(hub, StreamHub):
        return
    for _, spec in _stream_routes(app):
        if spec.policy is not None:
            hub.add_policy(spec.key_template, spec.policy)


def _stream_routes(app: FastAPI) -> list[tuple[Any, StreamSpec]]:
    """Every `@resumable_stream` route as the app serves it, with its spec."""
    found = []
    for route in _served_routes(app):
        spec = getattr(route.endpoint, "__streamhub_spec__", None)
        if isinstance(spec, StreamSpec):
            found.append((route, spec))
    return found


def _served_routes(app: FastAPI) -> list[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.137 copies included routes into app.routes
        return [route for route in app.routes if isinstance(route, APIRoute)]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


class _OpenAPI:
    """`app.openapi`, wrapped: mounts the stream routes declared since the last call,
    then documents every stream route's answer in the schema the app built."""

    def __init__(self, app: FastAPI, build: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.build = build

    def __call__(self) -> dict[str, Any]:
        if _mount_new(self.app):
            self.app.openapi_schema = None
        schema = self.build()
        for route, _ in _stream_routes(self.app):
            _document_event_stream(schema, route)
        return schema


def _document_event_stream(schema: dict[str, Any], route: Any) -> None:
    """Document the route's `200` answer as `text/event-stream`.

    FastAPI documents it as `application/json` with an empty schema (the default
    response class); that placeholder goes. What the route declares itself in
    `responses={200: ...}` stays.
    """
    declared: Mapping[str, Any] = route.responses.get(200) or route.responses.get("200") or {}
    operations = schema.get("paths", {}).get(route.path_format, {})
    for method in route.methods:
        operation = operations.get(method.lower())
        if operation is None:
            continue
        answer = operation.setdefault("responses", {}).setdefault("200", {})
        content = answer.setdefault("content", {})
        if content.get("application/json") == {"schema": {}}:
            del content["application/json"]
        content.setdefault("text/event-stream", {})
        if "description" not in declared and answer.get("description") == _FASTAPI_DEFAULT:
            answer["description"] = "Server-Sent Events"
