"""What a FastAPI app serves, seen through FastAPI's public API.

assert served_paths(app).count("/chat/{chat_id}/status") == 1
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute


def served_paths(app: FastAPI) -> list[str]:
    """The full path of every route `app` serves, those of included routers too."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.137 copies included routes into app.routes
        return [route.path for route in app.routes if isinstance(route, APIRoute)]
    return [context.path for context in iter_route_contexts(app.routes)]
