"""A long LLM-like answer as tokens: English prose with Markdown, code and punctuation,
split about as a tokenizer would (a word with its leading space, long words in two,
punctuation and line breaks on their own), about 4 bytes per token on average.
The server yields it and S7 checks what it reads back against it."""

from __future__ import annotations

import itertools
import re
from functools import cache

PASSAGE = """\
## Why resumable streams matter

A token stream is fragile: the user reloads the page, the network drops for a second, \
or the load balancer sends the reconnect to another instance. Without storage, the answer \
is gone while the model keeps generating it. With **fastapi-streamhub**, every event is \
stored before it is sent, so a client that comes back with its cursor (`Last-Event-ID`) \
gets exactly what it missed, then follows the rest live.

### What a finished answer costs

1. Each token used to be one entry in a Redis Stream, with about 72 bytes of overhead.
2. Once the answer is over, its tokens are merged: "one record, not ten thousand".
3. Named events (tool calls, reasoning) stay whole, in place; the end stays last.

```python
async for token in llm.stream(prompt):
    yield token  # stored, then sent, then compacted
```

That's it; résumé-proof, naïvely simple, and 100% exact.
"""

_PIECES = re.compile(r"\n+|[ ]*[A-Za-z\u00c0-\u024f']+|[ ]*[0-9]+|[ ]*[^\sA-Za-z0-9]|[ ]+")


def _split_long(piece: str) -> list[str]:
    if len(piece) <= 10:
        return [piece]
    middle = len(piece) // 2
    return [piece[:middle], piece[middle:]]


@cache
def _passage_tokens() -> tuple[str, ...]:
    return tuple(part for piece in _PIECES.findall(PASSAGE) for part in _split_long(piece))


def answer_tokens(count: int) -> list[str]:
    """The first `count` tokens of the answer (the passage, repeated as needed)."""
    return list(itertools.islice(itertools.cycle(_passage_tokens()), count))
