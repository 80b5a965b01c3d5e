"""S8: fan-in, against single-source streams of the same total rate, on the same server.

Two shapes, each run as single-source streams and as fanned-in ones of the same tokens
and the same total rate: one generation with `s8_one_sources` sources (each at the LLM
pace, so the single stream is that many times faster), and `s8_many_streams` sessions
of `s8_many_sources` sources each. The figures are the fanned-in cost per token over the
single-source one: server CPU and Redis commands (the issue's target: at most 1.2x).
The baseline has no sources; it is not measured here.
"""

from __future__ import annotations

from benchmarks.scenarios._common import Context, Figure, Snapshot, gather_bounded
from benchmarks.sizes import Sizes
from benchmarks.sse_client import open_stream


def env(sizes: Sizes) -> dict[str, str]:
    return {"BENCH_PACE_MS": str(sizes.s8_pace_ms)}


async def run(ctx: Context) -> list[Figure]:
    sizes = ctx.sizes
    one = (1, sizes.s8_one_sources, sizes.s8_one_tokens)
    many = (sizes.s8_many_streams, sizes.s8_many_sources, sizes.s8_many_tokens)
    figures: list[Figure] = []
    for name, (streams, sources, tokens) in (("one", one), ("many", many)):
        label = f"{streams} x {sources} sources"
        measured = ctx.target != "baseline"
        solo = await _cost(ctx, f"s8-{name}-solo", streams, 1, tokens) if measured else None
        fan = await _cost(ctx, f"s8-{name}-fan", streams, sources, tokens) if measured else None
        for index, (what, unit) in enumerate((("CPU", "µs"), ("Redis commands", ""))):
            key = ("cpu", "cmds")[index]
            single = None if solo is None else solo[index]
            fanned = None if fan is None else fan[index]
            ratio = None if single is None or fanned is None or not single else fanned / single
            figures += [
                Figure(
                    f"s8.{name}_{key}_solo",
                    f"S8 {what} per token, single, {label}",
                    unit,
                    single,
                    "none",
                ),
                Figure(
                    f"s8.{name}_{key}_fan",
                    f"S8 {what} per token, fan-in, {label}",
                    unit,
                    fanned,
                    "none",
                ),
                Figure(
                    f"s8.{name}_{key}_ratio",
                    f"S8 {what} fan-in / single, {label}",
                    "x",
                    ratio,
                    "none",
                ),
            ]
    return figures


async def _cost(
    ctx: Context, chat: str, streams: int, sources: int, tokens: int
) -> tuple[float, float | None]:
    """Server CPU and Redis commands per token of `streams` streams of `sources` sources,
    with `tokens` tokens each (shared between its sources)."""
    port = ctx.server.port
    before = Snapshot.take(ctx)
    started = await gather_bounded(
        open_stream(port, f"{chat}-{i}", tokens=tokens, sources=sources) for i in range(streams)
    )
    await gather_bounded(stream.finished for stream in started)
    after = Snapshot.take(ctx)
    total = streams * tokens
    commands = sum(before.calls_since(after).values()) / total if ctx.redis else None
    return before.cpu_us_per(after, total), commands
