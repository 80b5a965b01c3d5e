"""Log records about one stream name it twice: in the text (`stream 'chat:1'
(generation abc): ...`) for people reading plain logs, and as the record's
`stream_key` and `generation` fields (`extra=about(...)`) for JSON formatters and log
pipelines that filter by field.

Levels are deliberate: `warning` is for what an operator may have to act on (storage
away, a producer lost, a hook that raised, a response held open but unread for
`send_timeout_s`, which often means a buffering proxy); a client that leaves, resumes,
or falls behind and is ended (`SubscriberLaggedError`, counted by the metrics) is
`info` at most, since clients do that all the time.
"""

from __future__ import annotations


def about(key: str, generation: str | None) -> dict[str, object]:
    """The `extra` of a log record about the stream `key`, generation `generation`."""
    return {"stream_key": key, "generation": generation}
