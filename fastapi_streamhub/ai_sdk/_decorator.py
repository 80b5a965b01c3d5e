"""`@ai_sdk_stream`: a resumable stream route that `useChat` talks to unmodified."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from .._decorator import stream_decorator
from .._spec import Authorize, OnConflict, template_fields
from ._models import ChatRequest
from ._wire import AiSdkWire


def ai_sdk_stream(
    key_template: str,
    *,
    on_conflict: OnConflict = "reject",
    authorize: Authorize | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve an async-generator endpoint as the Vercel AI SDK's UI message stream.

    The endpoint takes a `ChatRequest` body (what `useChat` posts) and yields what a
    `@resumable_stream` generator yields: text, and the library's named events (tool
    calls, reasoning, ...), which become the SDK's parts. Beside `POST {path}` it gets
    `GET {path}/{id}/stream` (what `useChat({resume: true})` calls), `POST
    {path}/{id}/cancel` (call it on Stop) and `GET {path}/{id}/status`.

    Args:
        key_template: the stream key; `{id}` is the chat id from the body, e.g.
            `"chat:{id}"`. Other fields name path parameters of the route.
        on_conflict: a `POST` while the chat's answer is still running is refused with
            409 (`"reject"`), since its new message would not be answered; `"attach"`
            streams the running answer instead.
        authorize: optional `(request, key, action) -> bool` (or awaitable) called for
            `start`, `resume`, `cancel` and `status`; False answers 403.

    Raises:
        ValueError: the template does not name `{id}`.
        TypeError: the endpoint has no `ChatRequest` parameter, or has one named `id`.
    """
    if "id" not in template_fields(key_template):
        raise ValueError(f"key template {key_template!r} must name the chat id: '{{id}}'")

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function, eval_str=True)
        if "id" in signature.parameters:
            raise TypeError(
                f"{function.__qualname__}: the chat id comes from the body; rename the "
                "parameter `id`, which the mounted routes take from the path"
            )
        wire = AiSdkWire(_body_parameter(function, signature))
        decorator = stream_decorator(
            key_template, on_conflict, authorize, wire, name="@ai_sdk_stream"
        )
        return decorator(function)

    return decorate


def _body_parameter(function: Callable[..., Any], signature: inspect.Signature) -> str:
    """The name of the endpoint's one `ChatRequest` (or subclass) parameter."""
    found = [
        name
        for name, parameter in signature.parameters.items()
        if _is_chat_request(parameter.annotation)
    ]
    if len(found) != 1:
        raise TypeError(
            f"@ai_sdk_stream needs one parameter annotated with ChatRequest (or a subclass) "
            f"in {function.__qualname__}, found {found or 'none'}"
        )
    return found[0]


def _is_chat_request(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return isinstance(annotation, type) and issubclass(annotation, ChatRequest)
