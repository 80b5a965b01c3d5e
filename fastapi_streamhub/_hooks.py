"""Hooks through which the FastAPI layer wires a hub into an app.

The hub must not import the integration layer (routes, OpenAPI), which is built on
it. So the integration layer registers here what to do with an app that a hub is
attached to (`hub.init_app(app)`) or starts in (`hub.lifespan`), and the hub calls
`wire_app(app)` knowing nothing of what that does. Hooks must be idempotent: an app
is wired by `init_app` and again when its lifespan starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AppHook = Callable[[Any], None]

_app_hooks: list[AppHook] = []


def on_wire_app(hook: AppHook) -> AppHook:
    """Register `hook(app)` to run whenever a hub is wired into `app`."""
    if hook not in _app_hooks:
        _app_hooks.append(hook)
    return hook


def wire_app(app: Any) -> None:
    """Run every registered hook on `app`."""
    for hook in _app_hooks:
        hook(app)
