"""`@resumable_stream`: an async-generator endpoint becomes a resumable SSE endpoint.

The wrapper is a plain coroutine presenting the original signature through
`__signature__`. It deliberately does not use `functools.wraps`: FastAPI finds
async generators through `__wrapped__` and would stream them as JSON Lines.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._config import FinishHook
from ._cursor import Cursor
from ._dependency import get_hub
from ._errors import SessionBusyError
from ._http_errors import ForbiddenHTTPError, StreamConflictHTTPError, http_errors
from ._hub import StreamHub
from ._observe import resume_source
from ._policy import StreamPolicy
from ._runner import drive
from ._spec import Authorize, OnConflict, StreamSpec, template_fields
from ._subscription import Subscription
from ._wire import NATIVE, Wire

_REQUEST_PARAM = "_streamhub_request"


def resumable_stream(
    key_template: str,
    *,
    on_conflict: OnConflict = "attach",
    authorize: Authorize | None = None,
    on_finish: FinishHook | None = None,
    retention_s: float | None = None,
    abandon_after_s: float | None = None,
    delete_route: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make an async-generator endpoint resumable under the key `key_template`.

    Args:
        key_template: formatted from the endpoint's parameters, e.g. `"chat:{chat_id}"`.
        on_conflict: when the key already has a running producer, `"attach"` the caller
            to it, or `"reject"` with 409 Conflict.
        authorize: optional `(request, key, action) -> bool` (or awaitable) called for
            `start`, `resume`, `cancel`, `status`, `result` and `delete`; False answers 403.
        on_finish: called with the `StreamResult` of each generation once it has ended,
            on the instance that ran it (at least once: another instance runs it, with
            the same generation id, if that one dies first); the hub's otherwise.
        retention_s: how long these streams stay readable once finished; the hub's
            `retention_for` or `retention_s` otherwise.
        abandon_after_s: cancel a generation no reader on any instance followed for this
            long (reason `abandoned`); the hub's `abandon_after_s` otherwise.
        delete_route: also mount `DELETE {path}`, which stops and forgets the stream.
    """
    policy = None
    if on_finish is not None or retention_s is not None or abandon_after_s is not None:
        policy = StreamPolicy(retention_s, abandon_after_s, on_finish)
    return stream_decorator(
        key_template,
        on_conflict,
        authorize,
        NATIVE,
        name="@resumable_stream",
        policy=policy,
        delete_route=delete_route,
    )


def stream_decorator(
    key_template: str,
    on_conflict: OnConflict,
    authorize: Authorize | None,
    wire: Wire,
    *,
    name: str,
    policy: StreamPolicy | None = None,
    delete_route: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorator of a stream route that speaks `wire`; `name` is shown in errors.
    `policy` is its streams' own settings, `delete_route` mounts `DELETE {path}`."""
    if on_conflict not in ("attach", "reject"):
        raise ValueError("on_conflict must be 'attach' or 'reject'")
    fields = template_fields(key_template)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(function):
            raise TypeError(f"{name} needs an async generator function, not {function!r}")
        signature = inspect.signature(function, eval_str=True)
        missing = [f for f in fields if f not in signature.parameters and f not in wire.body_fields]
        if missing:
            raise TypeError(f"key template {key_template!r} names unknown parameters {missing}")
        spec = StreamSpec(
            key_template,
            tuple(fields),
            on_conflict,
            authorize,
            function,
            signature,
            wire,
            policy,
            delete_route,
        )
        return wrap_endpoint(spec, _start)

    return decorate


Start = Callable[[StreamSpec, Request, dict[str, Any]], Awaitable[Response]]


def wrap_endpoint(spec: StreamSpec, start: Start) -> Callable[..., Any]:
    """The route's endpoint: a plain coroutine with the function's signature (plus the
    request, if it takes none) that calls `start`, and carries the spec for mounting."""
    signature, function = spec.signature, spec.function
    own_request = _request_parameter(signature)

    async def endpoint(**kwargs: Any) -> Response:
        if own_request is None:
            return await start(spec, kwargs.pop(_REQUEST_PARAM), kwargs)
        return await start(spec, kwargs[own_request], kwargs)

    parameters = list(signature.parameters.values())
    if own_request is None:
        parameters.append(
            inspect.Parameter(_REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=inspect.Signature.empty
    )
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(endpoint, attribute, getattr(function, attribute))
    endpoint.__streamhub_spec__ = spec  # type: ignore[attr-defined]
    return endpoint


def _request_parameter(signature: inspect.Signature) -> str | None:
    """The endpoint's own `Request` parameter: FastAPI fills only one per endpoint."""
    for parameter in signature.parameters.values():
        if isinstance(parameter.annotation, type) and issubclass(parameter.annotation, Request):
            return parameter.name
    return None


async def _start(spec: StreamSpec, request: Request, params: dict[str, Any]) -> Response:
    hub = get_hub(request)
    with http_errors():
        key = spec.key(spec.wire.key_params(params))
        if not await spec.allowed(request, key, "start"):
            raise ForbiddenHTTPError("start")
        subscription = await _start_or_attach(hub, spec, key, params)
    return spec.wire.respond(subscription, hub)


async def _start_or_attach(
    hub: StreamHub, spec: StreamSpec, key: str, params: dict[str, Any]
) -> Subscription:
    policy = None
    if spec.policy is not None:
        policy = spec.key_template
        hub.add_policy(policy, spec.policy)
    try:
        producer, created = await hub.register(key, policy=policy)
        generation = producer.generation
    except SessionBusyError as exc:
        created, generation = False, exc.generation
    if not created and spec.on_conflict == "reject":
        raise StreamConflictHTTPError(key)
    if created:
        generator = spec.wire.generator(spec.function, params)
        hub.spawn(producer, lambda: drive(producer, generator))
    subscription = hub.subscribe(key, after=Cursor(generation, 0))
    if created:
        subscription.opened_at_start(generation)
    else:
        with resume_source("attach"):
            await subscription.open()
    return subscription
