"""S4: reading a finished stream back, from its start and from its middle."""

from __future__ import annotations

import statistics

from benchmarks.scenarios._common import Context, Figure, Snapshot, bounded, cursor
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream

CHAT = "s4-finished"


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_TOKENS": str(sizes.s4_events)}


async def run(ctx: Context) -> list[Figure]:
    events = ctx.sizes.s4_events
    first = await open_stream(ctx.server.port, CHAT, tokens=events)
    await bounded(first.finished)
    middle = cursor(first.generation, events // 2)
    full_rates, full_cpu, mid_rates = [], [], []
    for _ in range(ctx.sizes.s4_repeats):
        rate, cpu = await _read(ctx, None, 1, events)
        full_rates.append(rate)
        full_cpu.append(cpu)
        mid_rates.append((await _read(ctx, middle, events // 2 + 1, events - events // 2))[0])
    stored = ctx.redis.stream_bytes(CHAT) / (events + 1) if ctx.redis else None
    return [
        Figure(
            "s4.from_start", "S4 resume from start, events/s", "ev/s", statistics.median(full_rates)
        ),
        Figure(
            "s4.from_middle",
            "S4 resume from middle, events/s",
            "ev/s",
            statistics.median(mid_rates),
        ),
        Figure("s4.cpu_us", "S4 server CPU per replayed event", "µs", statistics.median(full_cpu)),
        Figure("s6.redis_bytes", "S6 Redis bytes per stored event (S4's stream)", "B", stored),
    ]


async def _read(
    ctx: Context, last_id: str | None, first_seq: int, events: int
) -> tuple[float, float]:
    """Events/s at the client and server CPU µs per event, for one resume."""
    before = Snapshot.take(ctx)
    stream = await open_stream(
        ctx.server.port, CHAT, start=False, after=last_id, first_seq=first_seq, tokens=events
    )
    await bounded(stream.finished)
    after = Snapshot.take(ctx)
    return events / (stream.ended_at - stream.started_at), before.cpu_us_per(after, events)
