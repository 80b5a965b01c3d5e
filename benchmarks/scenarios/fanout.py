"""S3: one stream, many subscribers: Redis commands and server CPU per event.

The stream's first token arrives and then the producer waits at a gate until
every subscriber has that token (proof it is attached), so the measured window
holds live fan-out only. The starting POST is the first subscriber; the others
read the resume route.
"""

from __future__ import annotations

from benchmarks.scenarios._common import (
    Context,
    Figure,
    NodeLoad,
    Snapshot,
    bounded,
    gather_bounded,
    resumes,
)
from benchmarks.sizes import Sizes
from benchmarks.sse_client import SSEStream, open_stream, request


def env(sizes: Sizes) -> dict[str, str]:
    pace = str(sizes.s3_pace_ms)
    return {"BENCH_TOKENS": str(sizes.s3_events), "BENCH_PACE_MS": pace, "BENCH_GATED": "1"}


async def run(ctx: Context) -> list[Figure]:
    figures: list[Figure] = []
    streams: list[SSEStream] = []
    nodes = NodeLoad()
    for subscribers in ctx.sizes.s3_subscribers:
        level_figures, level_streams = await _one_level(ctx, subscribers, nodes)
        figures += level_figures
        streams += level_streams
    resumed = resumes(streams)
    return [
        *figures,
        Figure("s3.resumes", "S3 resumes after a lagged end", "", resumed, "none"),
        *nodes.figures("s3", "event"),
    ]


async def _one_level(
    ctx: Context, subscribers: int, nodes: NodeLoad
) -> tuple[list[Figure], list[SSEStream]]:
    port, tokens, chat = ctx.server.port, ctx.sizes.s3_events, f"s3-{subscribers}"
    starter = await open_stream(port, chat, tokens=tokens)
    await bounded(starter.first_event)
    attaching = Snapshot.take(ctx)
    readers = await gather_bounded(
        open_stream(port, chat, start=False, tokens=tokens) for _ in range(subscribers - 1)
    )
    streams = [starter, *readers]
    await gather_bounded(stream.first_event for stream in streams)
    before = Snapshot.take(ctx)
    await request(port, "POST", f"/gate/{chat}")
    await gather_bounded(stream.finished for stream in streams)
    after = Snapshot.take(ctx)
    events = tokens  # tokens 2..n and the done event
    nodes.add(before, after, events)
    per_event = attach = None
    if ctx.redis:
        per_event = sum(before.calls_since(after).values()) / events
        if readers:
            attach = sum(attaching.calls_since(before).values()) / len(readers)
    at, subs = f"@{subscribers}", f"{subscribers} sub" + "s" * (subscribers > 1)
    figures = [
        Figure(f"s3.cmds{at}", f"S3 Redis commands per event, {subs}", "", per_event),
        Figure(f"s3.attach_cmds{at}", f"S3 Redis commands per attach, {subs}", "", attach),
        Figure(
            f"s3.cpu_us{at}",
            f"S3 server CPU per delivered event, {subs}",
            "µs",
            before.cpu_us_per(after, events * subscribers),
        ),
    ]
    return figures, streams
