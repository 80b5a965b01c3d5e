"""Prometheus metrics of the hub: what runs, what is written, what fails.

Needs the `prometheus` extra (`pip install 'fastapi-streamhub[prometheus]'`); the core
never imports it::

    from fastapi_streamhub.prometheus import PrometheusObserver, add_metrics_route

    hub = StreamHub.from_url(REDIS_URL, observers=[PrometheusObserver()])
    app = FastAPI(lifespan=hub.lifespan)
    add_metrics_route(app)  # GET /metrics

See docs/operating.md for the metrics, alerts, and multi-worker servers.
"""

from ._exposition import add_metrics_route, scrape_registry
from ._metrics import PrometheusObserver

__all__ = ["PrometheusObserver", "add_metrics_route", "scrape_registry"]
