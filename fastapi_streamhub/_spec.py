"""What `@resumable_stream` records about an endpoint, shared by it and its routes."""

from __future__ import annotations

import inspect
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request

from ._keys import validate_key
from ._policy import StreamPolicy

if TYPE_CHECKING:
    from ._wire import Wire

Action = Literal["start", "resume", "cancel", "status", "result", "delete", "steer"]
Authorize = Callable[[Request, str, Action], bool | Awaitable[bool]]
OnConflict = Literal["attach", "reject"]


def template_fields(template: str) -> list[str]:
    fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    if any(not f.isidentifier() for f in fields):
        raise ValueError(f"key template {template!r} may only name parameters, like '{{chat_id}}'")
    return fields


@dataclass(frozen=True, slots=True)
class StreamSpec:
    key_template: str
    fields: tuple[str, ...]
    on_conflict: OnConflict
    authorize: Authorize | None
    function: Callable[..., Any]
    signature: inspect.Signature
    wire: Wire
    policy: StreamPolicy | None = None
    """Its streams' own settings, registered with the hub under the key template."""
    delete_route: bool = False

    def key(self, params: dict[str, Any]) -> str:
        return validate_key(self.key_template.format(**{f: params[f] for f in self.fields}))

    async def allowed(self, request: Request, key: str, action: Action) -> bool:
        if self.authorize is None:
            return True
        verdict = self.authorize(request, key, action)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)
