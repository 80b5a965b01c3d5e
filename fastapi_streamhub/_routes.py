"""The routes mounted beside each `@resumable_stream` route: resume, cancel, status.

They are added when the app starts (routes are declared before that), carry the
wrapped route's dependencies so its authentication guards them too, and are
documented in OpenAPI like any other route.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Header, Query
from fastapi.params import Depends
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from ._cursor import Cursor
from ._decorator import error_response, unavailable_response
from ._dependency import get_hub
from ._errors import (
    BackendUnavailableError,
    InvalidCursorError,
    InvalidKeyError,
    SessionNotFoundError,
)
from ._spec import Action, StreamSpec
from ._sse import sse_response
from ._status import StreamStatus


class ErrorBody(BaseModel):
    detail: str


class StatusBody(BaseModel):
    key: str
    status: str
    generation: str
    last_seq: int
    last_event_id: str
    metadata: dict[str, Any]
    producer_running: bool


class CancelBody(StatusBody):
    cancelled: bool
    stopped: bool


def _status_body(status: StreamStatus) -> dict[str, Any]:
    return {
        "key": status.key,
        "status": status.status,
        "generation": status.generation,
        "last_seq": status.last_seq,
        "last_event_id": status.last_event_id,
        "metadata": status.metadata,
        "producer_running": status.producer_running,
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Refused by the route's `authorize` hook"},
    404: {"model": ErrorBody, "description": "No stream under this key"},
    422: {"model": ErrorBody, "description": "The key cannot be stored"},
    503: {"model": ErrorBody, "description": "Storage unavailable; retry after `Retry-After`"},
}


_MOUNTED: weakref.WeakValueDictionary[int, APIRoute] = weakref.WeakValueDictionary()
"""Routes whose siblings exist; a router shared by several apps is mounted once."""

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
}


def mount_stream_routes(app: FastAPI) -> None:
    """Add the resume, cancel and status routes of every `@resumable_stream` route once.

    Routes of included routers are mounted on the router that declares them, so
    the include's prefix and dependencies apply to the new routes as well.
    """
    for router in _routers(app.router):
        for route in list(router.routes):
            spec = getattr(getattr(route, "endpoint", None), "__streamhub_spec__", None)
            mounted = _MOUNTED.get(id(route)) is route
            if isinstance(route, APIRoute) and spec is not None and not mounted:
                _MOUNTED[id(route)] = route
                _mount(router, route, spec)
    app.openapi_schema = None


def _routers(router: APIRouter) -> Iterator[APIRouter]:
    yield router
    for route in router.routes:
        included = getattr(route, "original_router", None)
        if isinstance(included, APIRouter):
            yield from _routers(included)


def _mount(router: APIRouter, route: APIRoute, spec: StreamSpec) -> None:
    names = _path_names(route)
    unknown = [field for field in spec.fields if field not in names]
    if unknown:
        raise ValueError(
            f"key template {spec.key_template!r} of {route.path} names {unknown}, which are "
            "not path parameters: the resume, cancel and status routes could not build the key"
        )
    if _is_fastapi_event_source(route.response_class):
        raise ValueError(
            f"{route.path}: drop response_class=EventSourceResponse; @resumable_stream "
            "answers with its own event stream and documents it in OpenAPI"
        )
    route.response_class = Response
    route.responses = {**_SSE_RESPONSE, **route.responses}
    path_params = [p for p in spec.signature.parameters.values() if p.name in names]
    inherited = len(router.dependencies)
    common: dict[str, Any] = {
        "dependencies": [*route.dependencies[inherited:], *_signature_dependencies(spec)],
        "tags": [tag for tag in route.tags if tag not in router.tags],
    }
    name = route.name
    path = route.path.removeprefix(router.prefix)
    router.add_api_route(
        path + "/stream",
        _endpoint(spec, path_params, _resume, _resume_params()),
        methods=["GET"],
        name=f"{name}_resume",
        summary="Resume the stream",
        description="Replays the events after the cursor (`Last-Event-ID` header or "
        "`last_event_id` query), then follows live. 204 once the stream has ended and "
        "the cursor is its terminal event.",
        response_class=Response,
        responses={
            **_SSE_RESPONSE,
            204: {"description": "Finished, and the cursor is its terminal event"},
            400: {"model": ErrorBody, "description": "Malformed cursor"},
            **_ERRORS,
        },
        **common,
    )
    router.add_api_route(
        path + "/cancel",
        _endpoint(spec, path_params, _cancel, []),
        methods=["POST"],
        name=f"{name}_cancel",
        summary="Cancel the stream",
        description="Stops the producer wherever it runs and stores a `cancelled` event; "
        "waits briefly for the producer to confirm.",
        response_model=CancelBody,
        responses=_ERRORS,
        **common,
    )
    router.add_api_route(
        path + "/status",
        _endpoint(spec, path_params, _status, []),
        methods=["GET"],
        name=f"{name}_status",
        summary="Stream status",
        response_model=StatusBody,
        responses=_ERRORS,
        **common,
    )


def _is_fastapi_event_source(response_class: Any) -> bool:
    """FastAPI's own SSE response class turns the endpoint into a generator route."""
    try:
        from fastapi.sse import EventSourceResponse
    except ImportError:
        return False
    return isinstance(response_class, type) and issubclass(response_class, EventSourceResponse)


def _path_names(route: APIRoute) -> set[str]:
    return {field.name for field in route.dependant.path_params}


def _signature_dependencies(spec: StreamSpec) -> list[Any]:
    """The endpoint's own `Depends(...)` parameters (auth, say), minus the hub itself."""
    found = []
    for parameter in spec.signature.parameters.values():
        marker = parameter.default
        metadata = getattr(parameter.annotation, "__metadata__", ())
        for candidate in (marker, *metadata):
            if not isinstance(candidate, Depends) or candidate.dependency is get_hub:
                continue
            if candidate.dependency is None:
                found.append(Depends(_class_of(parameter), use_cache=candidate.use_cache))
            else:
                found.append(candidate)
    return found


def _class_of(parameter: inspect.Parameter) -> Any:
    """The dependency of a bare `Depends()`: the parameter's own type."""
    annotation = parameter.annotation
    return (
        getattr(annotation, "__origin__", annotation)
        if hasattr(annotation, "__metadata__")
        else annotation
    )


def _resume_params() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(
            "last_event_id",
            keyword,
            default=Query(None, description="Cursor: the id of the last event seen"),
            annotation=str | None,
        ),
        inspect.Parameter(
            "last_event_id_header",
            keyword,
            default=Header(None, alias="Last-Event-ID", description="Cursor, as browsers send it"),
            annotation=str | None,
        ),
    ]


Handler = Callable[..., Any]


def _endpoint(
    spec: StreamSpec,
    path_params: list[inspect.Parameter],
    handler: Handler,
    extra: list[inspect.Parameter],
) -> Callable[..., Any]:
    async def endpoint(**kwargs: Any) -> Any:
        request: Request = kwargs.pop("_streamhub_request")
        params = {p.name: kwargs.pop(p.name) for p in path_params}
        try:
            key = spec.key(params)
        except InvalidKeyError as exc:
            return error_response(422, str(exc))
        action: Action = handler.__name__.lstrip("_")  # type: ignore[assignment]
        if not await spec.allowed(request, key, action):
            return error_response(403, f"not allowed to {action} this stream")
        try:
            return await handler(request, key, **kwargs)
        except SessionNotFoundError as exc:
            return error_response(404, str(exc))
        except BackendUnavailableError:
            return unavailable_response()

    request_param = inspect.Parameter(
        "_streamhub_request", inspect.Parameter.KEYWORD_ONLY, annotation=Request
    )
    positional = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in path_params]
    endpoint.__signature__ = inspect.Signature([*positional, *extra, request_param])  # type: ignore[attr-defined]
    endpoint.__name__ = f"{spec.function.__name__}{handler.__name__}"
    return endpoint


async def _resume(
    request: Request, key: str, last_event_id: str | None, last_event_id_header: str | None
) -> Response:
    hub = get_hub(request)
    cursor_text = last_event_id_header if last_event_id_header is not None else last_event_id
    try:
        cursor = None if cursor_text is None else Cursor.parse(cursor_text)
    except InvalidCursorError as exc:
        return error_response(400, str(exc))
    try:
        subscription = await hub.subscribe(key, after=cursor).open()
    except InvalidCursorError as exc:
        return error_response(400, str(exc))
    if subscription.exhausted:
        return Response(status_code=204)
    return sse_response(subscription, hub.config)


async def _cancel(request: Request, key: str) -> Any:
    hub = get_hub(request)
    result = await hub.cancel(key, wait=hub.config.cancel_wait_s)
    if result is None:
        raise SessionNotFoundError(key)
    return {**_status_body(result.status), "cancelled": result.cancelled, "stopped": result.stopped}


async def _status(request: Request, key: str) -> Any:
    status = await get_hub(request).status(key)
    if status is None:
        raise SessionNotFoundError(key)
    return _status_body(status)
