"""Serving the metrics: a `/metrics` route on the app, in one process or many.

With `PROMETHEUS_MULTIPROC_DIR` set (prometheus_client's multiprocess mode, for
several uvicorn or gunicorn workers), each scrape builds a fresh registry that reads
every worker's files, so whichever worker answers, the figures are the whole
server's. Otherwise the route serves `registry` (prometheus_client's default one).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response


def scrape_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """What one scrape reads: every worker's files in multiprocess mode, else `registry`."""
    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return registry if registry is not None else REGISTRY


def add_metrics_route(
    app: Any,
    path: str = "/metrics",
    *,
    registry: CollectorRegistry | None = None,
    include_in_schema: bool = False,
) -> None:
    """Serve the metrics at `path` of `app` (a FastAPI or Starlette app), in the text
    format Prometheus asks for (OpenMetrics when its `Accept` header says so).

    The route takes no guard of its own: keep it off public listeners, or give `app`
    a middleware or a reverse-proxy rule that restricts it.
    """

    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(scrape_registry(registry)), media_type=content_type)

    app.add_route(path, metrics, methods=["GET"], include_in_schema=include_in_schema)
