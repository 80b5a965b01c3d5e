"""S6: server memory per active stream and per idle subscriber (RSS deltas).

Streams are held at their gate after the first token, so they are active but
quiet; the subscribers attach to one of them and wait. Every stream is then
released and read to its end, so nothing is measured that did not work.
"""

from __future__ import annotations

from benchmarks.scenarios._common import Context, Figure, gather_bounded
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream, request

TOKENS = 2


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_TOKENS": str(TOKENS), "BENCH_GATED": "1"}


async def run(ctx: Context) -> list[Figure]:
    port, rss = ctx.server.port, ctx.server.proc.rss
    chats = [f"s6-{i}" for i in range(ctx.sizes.s6_streams)]
    empty = rss()
    starters = await gather_bounded(open_stream(port, c, tokens=TOKENS) for c in chats)
    await gather_bounded(stream.first_event for stream in starters)
    with_streams = rss()
    readers = await gather_bounded(
        open_stream(port, chats[0], start=False, tokens=TOKENS)
        for _ in range(ctx.sizes.s6_subscribers)
    )
    await gather_bounded(stream.first_event for stream in readers)
    with_readers = rss()
    await gather_bounded(request(port, "POST", f"/gate/{c}") for c in chats)
    await gather_bounded(stream.finished for stream in [*starters, *readers])
    return [
        Figure(
            "s6.kib_stream",
            "S6 RSS per active stream",
            "KiB",
            (with_streams - empty) / 1024 / len(chats),
        ),
        Figure(
            "s6.kib_subscriber",
            "S6 RSS per idle subscriber",
            "KiB",
            (with_readers - with_streams) / 1024 / len(readers),
        ),
    ]
