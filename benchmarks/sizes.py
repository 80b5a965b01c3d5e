"""How big each scenario runs: the full run, and the `--smoke` run CI uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    s1_tokens: int = 20_000
    s1_repeats: int = 3
    s2_streams: int = 200
    s2_tokens: int = 200
    s2_pace_ms: float = 20.0
    s2_rounds: int = 5
    s3_subscribers: tuple[int, ...] = (1, 10, 100, 500)
    s3_events: int = 200
    s3_pace_ms: float = 20.0
    s4_events: int = 10_000
    s4_repeats: int = 3
    s5_starts: int = 200
    s5_tokens: int = 3
    s6_streams: int = 200
    s6_subscribers: int = 500
    s7_tokens: int = 10_000
    s7_repeats: int = 3
    s8_one_sources: int = 8
    s8_one_tokens: int = 1600
    s8_many_streams: int = 200
    s8_many_sources: int = 3
    s8_many_tokens: int = 150
    s8_pace_ms: float = 20.0
    """The pace of each source; a single-source stream of the same rate is k times faster."""
    s8_rounds: int = 3


FULL = Sizes()
SMOKE = Sizes(
    s1_tokens=500,
    s1_repeats=1,
    s2_streams=10,
    s2_tokens=20,
    s2_rounds=1,
    s3_subscribers=(1, 5),
    s3_events=20,
    s4_events=500,
    s4_repeats=1,
    s5_starts=10,
    s6_streams=10,
    s6_subscribers=10,
    s7_tokens=500,
    s7_repeats=1,
    s8_one_tokens=160,
    s8_many_streams=10,
    s8_many_tokens=30,
    s8_rounds=1,
)
