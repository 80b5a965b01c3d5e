"""S5: time from the start request to the first event parsed, sequential starts."""

from __future__ import annotations

import statistics

from benchmarks.scenarios._common import Context, Figure, NodeLoad, Snapshot, bounded, percentile
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_TOKENS": str(sizes.s5_tokens)}


async def run(ctx: Context) -> list[Figure]:
    samples_ms: list[float] = []
    before = Snapshot.take(ctx)
    for i in range(ctx.sizes.s5_starts):
        stream = await open_stream(ctx.server.port, f"s5-{i}", tokens=ctx.sizes.s5_tokens)
        first = await bounded(stream.first_event)
        await bounded(stream.finished)
        samples_ms.append((first - stream.started_at) * 1000)
    nodes = NodeLoad()
    nodes.add(before, Snapshot.take(ctx), ctx.sizes.s5_starts)
    return [
        Figure(
            "s5.median",
            "S5 time to first event, median",
            "ms",
            statistics.median(samples_ms),
            "diff",
        ),
        Figure("s5.p90", "S5 time to first event, p90", "ms", percentile(samples_ms, 90), "diff"),
        *nodes.figures("s5", "start"),
    ]
