"""The request body `useChat` sends: the chat's id and its messages as the page has them.

Only what the library reads is typed; everything else a message or the body carries (your
own `body` fields, file parts, tool parts) is kept as it came.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class UIMessage(BaseModel):
    """One message of the chat, as the AI SDK's `UIMessage`: an id, a role and its parts."""

    model_config = ConfigDict(extra="allow")

    id: str
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]] = Field(default_factory=list)
    metadata: Any = None

    @property
    def text(self) -> str:
        """The text of the message's `text` parts, joined."""
        return "".join(
            part["text"]
            for part in self.parts
            if part.get("type") == "text" and isinstance(part.get("text"), str)
        )


class ChatRequest(BaseModel):
    """The body of `useChat`'s `POST`: `{id, messages, trigger, messageId}`.

    Subclass it to read fields your page adds through the transport's `body` option.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, description="The chat's id: the stream key's `{id}`")
    messages: list[UIMessage]
    trigger: str = Field("submit-message", description="`submit-message` or `regenerate-message`")
    message_id: str | None = Field(
        None,
        alias="messageId",
        description="The message a submit edits, or the one to regenerate",
    )

    @property
    def continued_message(self) -> str | None:
        """The id of the assistant message this request continues, if the last message is one.

        That is the case after client-side tool results or approvals: the answer is
        appended to that message, as the AI SDK's own server does.
        """
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1].id
        return None
