"""Readiness and liveness routes for Kubernetes probes (or any load balancer).

Readiness answers `hub.health()`: 200 when the hub is started, storage answers and
every shared task runs; 503 otherwise, with the same JSON saying what is wrong, so
an instance that cannot serve streams leaves the load balancer until it can.

Liveness does not look at storage on purpose: a Redis outage makes every instance
unready at once, and restarting them all would not bring Redis back; it would only
drop the streams they still hold in memory. It answers as long as the process's
event loop does, which is what a restart can repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ._health import HubHealth
from ._hub import StreamHub


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the liveness route answers: the process serves; `started` says whether its
    hub runs (for a person reading it, not for the probe)."""

    alive: bool
    started: bool


_READY = "Ready: the hub is started, storage answers, and every shared task runs."
_NOT_READY = "Not ready: the hub is not started, storage does not answer, or a task is down."


def health_router(
    hub: StreamHub,
    *,
    ready_path: str = "/health/ready",
    live_path: str | None = "/health/live",
    tags: Sequence[str] = ("health",),
) -> APIRouter:
    """Routes for a readiness probe (`ready_path`) and a liveness probe (`live_path`;
    None: none). Mount them with `app.include_router(health_router(hub))`.

    The readiness route answers 200 or 503 with `hub.health()` as JSON; the liveness
    route answers 200 while the process serves requests, whatever storage does.
    """
    router = APIRouter(tags=list(tags))

    @router.get(
        ready_path,
        summary="Readiness of this instance's stream hub",
        response_model=HubHealth,
        responses={
            200: {"description": _READY},
            503: {"model": HubHealth, "description": _NOT_READY},
        },
    )
    async def ready() -> JSONResponse:
        health = await hub.health()
        return JSONResponse(health.as_dict(), status_code=200 if health.ready else 503)

    if live_path is not None:

        @router.get(live_path, summary="Liveness of this process", response_model=Liveness)
        async def live() -> Liveness:
            return Liveness(alive=True, started=hub.started)

    return router
