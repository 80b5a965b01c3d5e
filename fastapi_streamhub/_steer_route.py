"""The `steer` route beside a `@resumable_stream` route: `POST {path}/steer`.

Its body is any JSON value, read with a cap (`max_message_bytes`) before it is parsed,
so an oversized body is refused without being held in memory. `_routes.py` mounts it
with the others, with the same guards and `authorize` hook (action `steer`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request

from ._dependency import get_hub
from ._errors import MessageTooLargeError

STEER_SOURCE = "client"
"""The source a message sent through the route carries."""


class SteerBody(BaseModel):
    key: str
    id: str
    generation: str


async def read_capped(request: Request, max_bytes: int) -> bytes:
    """The request body; refused as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MessageTooLargeError(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise MessageTooLargeError(max_bytes)
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; a body that is not JSON is answered as FastAPI answers
    one for a JSON body parameter (422, `json_invalid`)."""
    try:
        return json.loads(body)
    except ValueError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", getattr(exc, "pos", 0)),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": getattr(exc, "msg", str(exc))},
        }
        raise RequestValidationError([error]) from None


async def _steer(request: Request, key: str) -> Any:
    hub = get_hub(request)
    try:
        message = parse_json(await read_capped(request, hub.config.max_message_bytes))
    except (MessageTooLargeError, RequestValidationError) as exc:
        if (observer := hub.config.observer) is not None:
            too_large = isinstance(exc, MessageTooLargeError)
            observer.steer_sent(key, "too_large" if too_large else "invalid")
        raise
    steered = await hub.steer(key, message, source=STEER_SOURCE)
    return {"key": steered.key, "id": steered.id, "generation": steered.generation}


def steer_options(errors: dict[int | str, dict[str, Any]], error_body: Any) -> dict[str, Any]:
    return {
        "methods": ["POST"],
        "summary": "Steer the running generation",
        "description": "Delivers the JSON body to the generation running now, wherever its "
        "producer runs, and records it in the stream as a `steer` event. A generation "
        "that has ended takes no message (409): it is never kept for the next one.",
        "status_code": 202,
        "response_model": SteerBody,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "description": "The message: any JSON value.",
                "content": {"application/json": {"schema": {}}},
            }
        },
        "responses": {
            **errors,
            409: {"model": error_body, "description": "No generation is running"},
            413: {"model": error_body, "description": "The message is too large"},
            422: {"description": "The body is not JSON, or the key cannot be stored"},
            429: {"model": error_body, "description": "Too many messages not read yet"},
        },
    }
