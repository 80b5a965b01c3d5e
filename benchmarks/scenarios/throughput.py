"""S1: one stream, tokens as fast as the generator yields them."""

from __future__ import annotations

import statistics

from benchmarks.scenarios._common import (
    Context,
    Figure,
    NodeLoad,
    Snapshot,
    bounded,
    median_or_none,
)
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_TOKENS": str(sizes.s1_tokens)}


async def run(ctx: Context) -> list[Figure]:
    tokens = ctx.sizes.s1_tokens
    rates: list[float] = []
    cpu: list[float] = []
    redis_cpu: list[float | None] = []
    resumes = 0
    nodes = NodeLoad()
    for i in range(ctx.sizes.s1_repeats):
        before = Snapshot.take(ctx)
        stream = await open_stream(ctx.server.port, f"s1-{i}", tokens=tokens)
        await bounded(stream.finished)
        after = Snapshot.take(ctx)
        rates.append(tokens / (stream.ended_at - stream.started_at))
        cpu.append(before.cpu_us_per(after, tokens))
        redis_cpu.append(before.redis_cpu_us_per(after, tokens))
        resumes += stream.resumes
        nodes.add(before, after, tokens)
    return [
        Figure("s1.tokens_per_s", "S1 tokens/s at the client", "tok/s", statistics.median(rates)),
        Figure("s1.cpu_us", "S1 server CPU per token", "µs", statistics.median(cpu)),
        Figure("s1.redis_cpu_us", "S1 redis-server CPU per token", "µs", median_or_none(redis_cpu)),
        Figure("s1.resumes", "S1 resumes after a lagged end (all runs)", "", resumes, "none"),
        *nodes.figures("s1", "token"),
    ]
