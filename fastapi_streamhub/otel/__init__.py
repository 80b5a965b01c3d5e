"""OpenTelemetry traces of the hub: generation spans, resume spans, and the links between.

Needs the `otel` extra (`pip install 'fastapi-streamhub[otel]'`: the OpenTelemetry
API only; the app configures the SDK and its exporter); the core never imports it::

    from fastapi_streamhub.otel import TracingObserver

    hub = StreamHub.from_url(REDIS_URL, observers=[TracingObserver()])

See docs/operating.md for the spans, their attributes and events.
"""

from ._tracing import TracingObserver

__all__ = ["TracingObserver"]
