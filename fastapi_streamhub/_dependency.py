"""How endpoints receive the hub: `hub: StreamHub = Depends(get_hub)`."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ._errors import HubNotStartedError
from ._hub import StreamHub


def get_hub(connection: HTTPConnection) -> StreamHub:
    """The app's StreamHub (set by `hub.lifespan` or `hub.init_app`)."""
    hub = getattr(connection.app.state, "streamhub", None)
    if not isinstance(hub, StreamHub) or not hub.started:
        raise HubNotStartedError()
    return hub
