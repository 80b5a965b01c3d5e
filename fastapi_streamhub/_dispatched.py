"""`@dispatched_stream`: an endpoint whose stream a job queue worker produces.

The endpoint is a coroutine that returns the job's parameters. A call claims the key
for a generation that waits for a worker, runs the endpoint, hands the job to
`dispatch` (which puts it on the queue), and answers with that generation's events
from the first, as they are stored by the worker, on any instance. The endpoint runs
only when a new generation starts: a call that attaches to a running one does not run
it. Its routes (resume, cancel, status) are mounted as for `@resumable_stream`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._cursor import Cursor
from ._decorator import wrap_endpoint
from ._dependency import get_hub
from ._errors import SessionBusyError
from ._http_errors import ForbiddenHTTPError, StreamConflictHTTPError, http_errors
from ._hub import StreamHub
from ._jobs import StreamJob
from ._spec import Authorize, OnConflict, StreamSpec, template_fields
from ._sse import sse_response
from ._wire import NATIVE

Dispatch = Callable[[StreamJob], Awaitable[object]]


def dispatched_stream(
    key_template: str,
    *,
    dispatch: Dispatch,
    on_conflict: OnConflict = "attach",
    authorize: Authorize | None = None,
    start_timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve a stream that a job queue worker produces, under the key `key_template`.

    The decorated endpoint is a coroutine that returns the job's parameters (a
    JSON-serialisable dict); the worker runs the job with `StreamHub.run`.

    Args:
        key_template: formatted from the endpoint's parameters, e.g. `"chat:{chat_id}"`.
        dispatch: `async (job: StreamJob) -> Any`: puts the job on the queue. If it
            raises, the stream ends with `error` (`not_sent`) and the request fails.
        on_conflict: when the key already runs (or waits for its worker), `"attach"`
            the caller to it, or `"reject"` with 409 Conflict.
        authorize: optional `(request, key, action) -> bool` (or awaitable) called for
            `start`, `resume`, `cancel` and `status`; False answers 403.
        start_timeout_s: how long the job may wait for a worker before the stream ends
            with `error` (`not_started`); the hub's `start_timeout_s` by default.
    """
    if on_conflict not in ("attach", "reject"):
        raise ValueError("on_conflict must be 'attach' or 'reject'")
    fields = template_fields(key_template)

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(
                f"@dispatched_stream needs a coroutine function that returns the job's "
                f"parameters, not {function!r}"
            )
        signature = inspect.signature(function, eval_str=True)
        missing = [f for f in fields if f not in signature.parameters]
        if missing:
            raise TypeError(f"key template {key_template!r} names unknown parameters {missing}")
        spec = StreamSpec(
            key_template, tuple(fields), on_conflict, authorize, function, signature, NATIVE
        )

        async def start(spec: StreamSpec, request: Request, params: dict[str, Any]) -> Response:
            return await _start(spec, dispatch, start_timeout_s, request, params)

        return wrap_endpoint(spec, start)

    return decorate


async def _start(
    spec: StreamSpec,
    dispatch: Dispatch,
    start_timeout_s: float | None,
    request: Request,
    params: dict[str, Any],
) -> Response:
    hub = get_hub(request)
    with http_errors():
        key = spec.key(params)
        if not await spec.allowed(request, key, "start"):
            raise ForbiddenHTTPError("start")
        generation = await _claim_or_attach(hub, spec, key, start_timeout_s, params, dispatch)
        subscription = await hub.subscribe(key, after=Cursor(generation, 0)).open()
    return sse_response(subscription, hub.config, hub.send_guard)


async def _claim_or_attach(
    hub: StreamHub,
    spec: StreamSpec,
    key: str,
    start_timeout_s: float | None,
    params: dict[str, Any],
    dispatch: Dispatch,
) -> str:
    async def job_params() -> Any:
        return await spec.function(**params)

    try:
        job = await hub.dispatch(key, job_params, send=dispatch, start_timeout_s=start_timeout_s)
    except SessionBusyError as exc:
        if spec.on_conflict == "reject":
            raise StreamConflictHTTPError(key) from exc
        return exc.generation
    return job.generation
