"""The result and delete routes beside a `@resumable_stream` route, and what a cancel
answers about the answer it stopped (`_routes.py` mounts them with the others)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from ._dependency import get_hub
from ._errors import SessionNotFoundError
from ._result import StreamResult
from ._status import CancelResult


class ResultEventBody(BaseModel):
    seq: int
    event: str | None
    data: Any


class ResultBody(BaseModel):
    key: str
    generation: str
    status: str
    text: str
    events: list[ResultEventBody]
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    end: dict[str, Any] | None
    last_event_id: str


def result_body(result: StreamResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "generation": result.generation,
        "status": result.status,
        "text": result.text,
        "events": [{"seq": e.seq, "event": e.event, "data": e.data} for e in result.events],
        "metadata": result.metadata,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "end": result.end,
        "last_event_id": result.last_event_id,
    }


def receipt_body(request: Request, outcome: CancelResult) -> dict[str, Any]:
    """What a cancel adds to the status: how much answer there is, and where it is."""
    return {
        "last_content_event_id": outcome.last_content_event_id,
        "text_length": outcome.text_length,
        "usage": outcome.usage,
        "result_url": str(request.url.path).removesuffix("/cancel") + "/result",
    }


async def _result(request: Request, key: str, generation: str | None) -> Any:
    result = await get_hub(request).result(key, generation=generation)
    if result is None:
        raise SessionNotFoundError(key)
    return result_body(result)


async def _delete(request: Request, key: str) -> Response:
    if not await get_hub(request).remove(key):
        raise SessionNotFoundError(key)
    return Response(status_code=204)
