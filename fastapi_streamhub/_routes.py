"""The routes mounted beside each `@resumable_stream` route: resume, cancel, status,
result, steer (`_steer_route.py`), and (if asked for) delete.

They are added to the app's own router with the wrapped route's full path, tags and
guards (see `_guards.py`), and are documented in OpenAPI like any other route.
`_mount.py` decides when.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from fastapi import FastAPI, Header, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path

from ._dependency import get_hub
from ._errors import SessionNotFoundError
from ._guards import guards
from ._http_errors import ForbiddenHTTPError, http_errors
from ._observe import cursor_source, resume_source
from ._result_routes import ResultBody, _delete, _result, receipt_body
from ._spec import Action, StreamSpec
from ._status import StreamStatus
from ._steer_route import _steer, steer_options
from ._wire import Wire


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
    pending: bool = False


class CancelBody(StatusBody):
    cancelled: bool
    stopped: bool
    last_content_event_id: str | None
    text_length: int | None
    usage: Any
    result_url: str


def _status_body(status: StreamStatus) -> dict[str, Any]:
    return {
        "key": status.key,
        "status": status.status,
        "generation": status.generation,
        "last_seq": status.last_seq,
        "last_event_id": status.last_event_id,
        "metadata": status.metadata,
        "producer_running": status.producer_running,
        "pending": status.pending,
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "Refused by the route's `authorize` hook"},
    404: {"model": ErrorBody, "description": "No stream under this key"},
    422: {"model": ErrorBody, "description": "The key cannot be stored"},
    503: {"model": ErrorBody, "description": "Storage unavailable; retry after `Retry-After`"},
}


_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
}


def add_stream_routes(app: FastAPI, route: Any, spec: StreamSpec) -> None:
    """Add the resume, cancel and status routes beside `route` to `app`'s own router.

    `route` is the wrapped route as the app serves it: an `APIRoute`, or FastAPI's
    route context of one from an included router, with the full path, tags and
    dependencies of its inclusion. A format that reads key fields from the body
    (`spec.wire.body_fields`) gets them as path segments: `{path}/{id}/stream`.
    """
    base = route.path + "".join(f"/{{{field}}}" for field in spec.wire.body_fields)
    names = set(compile_path(base)[2])
    _check(route, spec, names)
    path_params = [
        p
        for p in spec.signature.parameters.values()
        if p.name in names and p.name not in spec.wire.body_fields
    ]
    path_params += [
        inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for field in spec.wire.body_fields
    ]
    common: dict[str, Any] = {
        "dependencies": guards(app, route, spec),
        "tags": [tag for tag in route.tags if tag not in app.router.tags],
        "include_in_schema": route.include_in_schema,
        "deprecated": route.deprecated,
    }
    siblings = [_resume_sibling(spec.wire), *_SIBLINGS]
    for sibling in [*siblings, _DELETE] if spec.delete_route else siblings:
        app.router.add_api_route(
            base + sibling.suffix,
            _endpoint(spec, path_params, sibling.handler, sibling.parameters()),
            name=f"{route.name}{sibling.handler.__name__}",
            **sibling.options,
            **common,
        )


def _check(route: Any, spec: StreamSpec, names: set[str]) -> None:
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


def _is_fastapi_event_source(response_class: Any) -> bool:
    """FastAPI's own SSE response class turns the endpoint into a generator route."""
    try:
        from fastapi.sse import EventSourceResponse
    except ImportError:
        return False
    return isinstance(response_class, type) and issubclass(response_class, EventSourceResponse)


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
        action: Action = handler.__name__.lstrip("_")  # type: ignore[assignment]
        with http_errors():
            key = spec.key(params)
            if not await spec.allowed(request, key, action):
                raise ForbiddenHTTPError(action)
            return await handler(request, key, **kwargs)

    request_param = inspect.Parameter(
        "_streamhub_request", inspect.Parameter.KEYWORD_ONLY, annotation=Request
    )
    positional = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in path_params]
    endpoint.__signature__ = inspect.Signature([*positional, *extra, request_param])  # type: ignore[attr-defined]
    endpoint.__name__ = f"{spec.function.__name__}{handler.__name__}"
    return endpoint


async def _cancel(request: Request, key: str) -> Any:
    hub = get_hub(request)
    result = await hub.cancel(key, wait=hub.config.cancel_wait_s)
    if result is None:
        raise SessionNotFoundError(key)
    return {
        **_status_body(result.status),
        "cancelled": result.cancelled,
        "stopped": result.stopped,
        **receipt_body(request, result),
    }


async def _status(request: Request, key: str) -> Any:
    status = await get_hub(request).status(key)
    if status is None:
        raise SessionNotFoundError(key)
    return _status_body(status)


def _result_params() -> list[inspect.Parameter]:
    return [
        inspect.Parameter(
            "generation",
            inspect.Parameter.KEYWORD_ONLY,
            default=Query(None, description="A generation id; the current one if omitted"),
            annotation=str | None,
        )
    ]


class _Sibling(NamedTuple):
    suffix: str
    handler: Handler
    options: dict[str, Any]
    parameters: Callable[[], list[inspect.Parameter]] = list


def _resume_sibling(wire: Wire) -> _Sibling:
    """The resume route, which answers in the route's own format."""

    async def _resume(
        request: Request, key: str, last_event_id: str | None, last_event_id_header: str | None
    ) -> Response:
        cursor = last_event_id_header if last_event_id_header is not None else last_event_id
        with resume_source(cursor_source(last_event_id_header, last_event_id)):
            return await wire.resume(request, key, cursor)

    options = {
        "methods": ["GET"],
        "summary": "Resume the stream",
        "description": wire.resume_description,
        "response_class": Response,
        "responses": {
            **_SSE_RESPONSE,
            204: {"description": wire.no_content},
            400: {
                "model": ErrorBody,
                "description": "Malformed cursor, or one ahead of the stream",
            },
            **_ERRORS,
        },
    }
    return _Sibling("/stream", _resume, options, _resume_params)


_SIBLINGS = [
    _Sibling(
        "/cancel",
        _cancel,
        {
            "methods": ["POST"],
            "summary": "Cancel the stream",
            "description": "Stops the producer wherever it runs and stores a `cancelled` "
            "event; waits briefly for the producer to confirm.",
            "response_model": CancelBody,
            "responses": _ERRORS,
        },
    ),
    _Sibling(
        "/status",
        _status,
        {
            "methods": ["GET"],
            "summary": "Stream status",
            "response_model": StatusBody,
            "responses": _ERRORS,
        },
    ),
    _Sibling(
        "/result",
        _result,
        {
            "methods": ["GET"],
            "summary": "Stream result",
            "description": "The answer assembled: text, other events, status, metadata, "
            "times and last event id; what exists so far while it runs. 404 if the "
            "generation asked for is not the current one.",
            "response_model": ResultBody,
            "responses": _ERRORS,
        },
        _result_params,
    ),
    _Sibling("/steer", _steer, steer_options(_ERRORS, ErrorBody)),
]

_DELETE = _Sibling(
    "",
    _delete,
    {
        "methods": ["DELETE"],
        "summary": "Delete the stream",
        "description": "Cancels a running generation, then forgets everything stored.",
        "status_code": 204,
        "response_class": Response,
        "responses": {204: {"description": "Deleted"}, **_ERRORS},
    },
)
