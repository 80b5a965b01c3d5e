"""The Vercel AI SDK's UI message stream: a resumable endpoint that `useChat` talks to.

`@ai_sdk_stream("chat:{id}")` on `@app.post("/api/chat")` serves what `useChat` expects
with its defaults, `resume: true` included: `POST /api/chat` with the body `{id,
messages, trigger, messageId}`, and `GET /api/chat/{id}/stream` to resume. The generator
yields what a `@resumable_stream` generator yields; the parts it becomes are listed in
the docs ("Use with the Vercel AI SDK"). Tested with `ai` 7 and `@ai-sdk/react` 4; the
parts are valid for `ai` 5 and 6 too. It needs no extra package.
"""

from ._decorator import ai_sdk_stream
from ._models import ChatRequest, UIMessage
from ._response import UI_MESSAGE_STREAM_HEADERS, ui_message_stream_response
from ._wire import current_message_id

__all__ = [
    "UI_MESSAGE_STREAM_HEADERS",
    "ChatRequest",
    "UIMessage",
    "ai_sdk_stream",
    "current_message_id",
    "ui_message_stream_response",
]
