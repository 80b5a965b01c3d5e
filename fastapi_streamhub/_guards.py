"""Which dependencies of a `@resumable_stream` route its mounted routes run again.

The mounted routes (resume, cancel, status) must be guarded like the route they
serve: they re-run its route-level `dependencies=[...]` (those of its router and
includes too) and every `Depends(...)` parameter of the endpoint, except `get_hub`.
A dependency whose tree declares body parameters is left out: the mounted routes
take no body, so it would answer every request with 422. Guards read headers,
cookies, query or path parameters.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRoute

from ._dependency import get_hub
from ._spec import StreamSpec


def guards(app: FastAPI, route: Any, spec: StreamSpec) -> list[Depends]:
    """The dependencies to pass to `app.router.add_api_route` for a route beside `route`.

    `route` carries the effective dependencies of the wrapped route, the app's own
    first; `add_api_route` adds the app's again, so they are cut here.
    """
    own: list[Depends] = list(route.dependencies)
    inherited = list(app.router.dependencies)
    if own[: len(inherited)] == inherited:
        own = own[len(inherited) :]
    return [d for d in [*own, *_signature_dependencies(spec)] if not _reads_body(d)]


def _signature_dependencies(spec: StreamSpec) -> list[Depends]:
    """The endpoint's own `Depends(...)` parameters (auth, say), minus the hub itself."""
    found: list[Depends] = []
    for parameter in spec.signature.parameters.values():
        metadata = getattr(parameter.annotation, "__metadata__", ())
        for candidate in (parameter.default, *metadata):
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


def _reads_body(dependency: Depends) -> bool:
    """Whether `dependency`, or one it depends on, declares body parameters.

    Asked of FastAPI itself: a route with only this dependency has a body field
    exactly when something in its dependency tree reads the body.
    """
    probe = APIRoute("/", _probe, methods=["POST"], dependencies=[dependency])
    return probe.body_field is not None


async def _probe() -> None:
    """The endpoint of the throwaway route `_reads_body` builds."""
