"""OpenAI streams in: yield a model's stream from a `@resumable_stream` generator.

Needs the `openai` extra (`pip install 'fastapi-streamhub[openai]'`); `openai` is
imported only when a stream is read. The adapters map the model's output onto the
library's named events, so one generator serves every wire format:

| the model streams         | the generator yields                                      |
| ------------------------- | --------------------------------------------------------- |
| answer text               | the text, as a `str`                                      |
| reasoning text            | `Event("reasoning", text)`                                |
| a tool call starting      | `Event("tool_call_start", {"id", "name"})`                |
| tool call arguments       | `Event("tool_call_delta", {"id", "delta"})`               |
| a complete tool call      | `Event("tool_call", {"id", "name", "arguments"})`         |
| usage, finish reason      | metadata on `done`: `{"usage": {...}, "finish_reason"}`   |
| an error                  | `StreamError`: an `error` event with a message safe to show |
"""

from ._adapter import ModelEvents, UpstreamStream
from ._chat import chat_completion_events
from ._responses import response_events

__all__ = ["ModelEvents", "UpstreamStream", "chat_completion_events", "response_events"]
