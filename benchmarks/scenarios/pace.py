"""S2: many concurrent streams at an LLM's pace: CPU per token and added delay."""

from __future__ import annotations

from benchmarks.scenarios._common import (
    Context,
    Figure,
    NodeLoad,
    Snapshot,
    gather_bounded,
    percentile,
    resumes,
)
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_TOKENS": str(sizes.s2_tokens), "BENCH_PACE_MS": str(sizes.s2_pace_ms)}


async def run(ctx: Context) -> list[Figure]:
    sizes, port = ctx.sizes, ctx.server.port
    total = sizes.s2_streams * sizes.s2_tokens
    before = Snapshot.take(ctx)
    streams = await gather_bounded(
        open_stream(port, f"s2-{i}", tokens=sizes.s2_tokens, latency=True)
        for i in range(sizes.s2_streams)
    )
    await gather_bounded(stream.finished for stream in streams)
    after = Snapshot.take(ctx)
    nodes = NodeLoad()
    nodes.add(before, after, total)
    delays_ms = [delay * 1000 for stream in streams for delay in stream.latencies]
    return [
        Figure(
            "s2.tokens_per_s", "S2 tokens/s, all streams", "tok/s", total / (after.at - before.at)
        ),
        Figure("s2.cpu_us", "S2 server CPU per token", "µs", before.cpu_us_per(after, total)),
        Figure(
            "s2.redis_cpu_us",
            "S2 redis-server CPU per token",
            "µs",
            before.redis_cpu_us_per(after, total),
        ),
        Figure("s2.delay_p50", "S2 delay per token p50", "ms", percentile(delays_ms, 50), "diff"),
        Figure("s2.delay_p99", "S2 delay per token p99", "ms", percentile(delays_ms, 99), "diff"),
        Figure("s2.resumes", "S2 resumes after a lagged end", "", resumes(streams), "none"),
        *nodes.figures("s2", "token"),
    ]
