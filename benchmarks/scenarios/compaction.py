"""S7: a finished 10,000-token text answer, as token events and compacted.

The answer (`benchmarks/answer_text.py`) is streamed once and left finished. Redis
bytes are `MEMORY USAGE` of every key of its session (state and events), first as
one event per token, then after `POST /compact/{chat}` (the hub's `compact`; the
server's own delay is an hour, so nothing compacts it earlier). The replays read it
back from the start and from its middle (a cursor inside the merged run), and the
text read is checked against the answer, character for character. Rates are tokens
of the answer per second, so the two forms compare directly. The baseline has no
compaction: its figures are the token replay only.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.answer_text import answer_tokens
from benchmarks.scenarios._common import Context, Figure, bounded, cursor
from benchmarks.sizes import Sizes
from benchmarks.sse_client import StreamBrokenError, open_stream, request

CHAT = "s7-answer"


def env(sizes: Sizes) -> dict[str, str]:
    return {
        "BENCH_TOKENS": str(sizes.s7_tokens),
        "BENCH_TEXT": "1",
        "BENCH_COMPACT_AFTER_S": "3600",
    }


async def run(ctx: Context) -> list[Figure]:
    tokens = ctx.sizes.s7_tokens
    answer = answer_tokens(tokens)
    text_bytes = len("".join(answer).encode())
    first = await open_stream(ctx.server.port, CHAT, tokens=tokens)
    await bounded(first.finished)
    raw_bytes = ctx.redis.session_bytes(CHAT) if ctx.redis else None
    raw = [await _replay(ctx, None, tokens) for _ in range(ctx.sizes.s7_repeats)]
    figures = [
        Figure("s7.text_bytes", "S7 text of the answer, UTF-8", "B", text_bytes, "none"),
        Figure("s7.token_bytes", "S7 mean token", "B", text_bytes / tokens, "none"),
        Figure("s7.redis_raw", "S7 Redis bytes per answer, token events", "B", raw_bytes),
        Figure("s7.replay_raw", "S7 replay of token events from start", "tok/s", _median(raw)),
    ]
    if not first.generation:  # the baseline: nothing to compact
        return figures
    started = time.perf_counter()
    await request(ctx.server.port, "POST", f"/compact/{CHAT}")
    compact_ms = (time.perf_counter() - started) * 1000
    compact_bytes = ctx.redis.session_bytes(CHAT) if ctx.redis else None
    middle = cursor(first.generation, tokens // 2)
    whole, halves = [], []
    for _ in range(ctx.sizes.s7_repeats):
        whole.append(await _replay(ctx, None, tokens, "".join(answer)))
        halves.append(await _replay(ctx, middle, tokens // 2, "".join(answer[tokens // 2 :])))
    return [
        *figures,
        Figure("s7.redis_compact", "S7 Redis bytes per answer, compacted", "B", compact_bytes),
        Figure(
            "s7.compact_ratio",
            "S7 compacted bytes per text byte",
            "x",
            None if compact_bytes is None else compact_bytes / text_bytes,
            "none",
        ),
        Figure("s7.compact_ms", "S7 compaction call (POST /compact)", "ms", compact_ms, "none"),
        Figure("s7.replay_compact", "S7 replay compacted from start", "tok/s", _median(whole)),
        Figure(
            "s7.replay_compact_mid",
            "S7 replay compacted from a cursor mid-run",
            "tok/s",
            _median(halves),
        ),
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _replay(ctx: Context, after: str | None, tokens: int, text: str | None = None) -> float:
    """Tokens of the answer per second, for one resume; with `text`, the stream is read
    as compacted text and checked against it."""
    first_seq = 1 if after is None else int(after.rpartition(":")[2]) + 1
    stream = await open_stream(
        ctx.server.port,
        CHAT,
        start=False,
        after=after,
        first_seq=first_seq,
        tokens=tokens,
        text=text is not None,
    )
    await bounded(stream.finished)
    if text is not None and stream.text != text:
        raise StreamBrokenError(f"{CHAT}: the compacted answer read back is not the answer")
    return tokens / (stream.ended_at - stream.started_at)
