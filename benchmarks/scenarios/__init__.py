"""The scenarios, by number: each names its server workload and measures it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from benchmarks.scenarios import (
    compaction,
    fan_in,
    fanout,
    first_event,
    footprint,
    pace,
    resume,
    throughput,
)
from benchmarks.scenarios._common import Compare, Context, Figure, median_figures
from benchmarks.sizes import Sizes


def _once(sizes: Sizes) -> int:
    return 1


def _s2_rounds(sizes: Sizes) -> int:
    return sizes.s2_rounds


def _s8_rounds(sizes: Sizes) -> int:
    return sizes.s8_rounds


@dataclass(frozen=True)
class Scenario:
    number: int
    title: str
    env: Callable[[Sizes], dict[str, str]]
    run: Callable[[Context], Coroutine[Any, Any, list[Figure]]]
    rounds: Callable[[Sizes], int] = _once
    """Rounds run in turn across targets (figures are their medians): for the figures
    a slow spell of a shared machine would otherwise move by more than the effect."""


SCENARIOS = {
    s.number: s
    for s in (
        Scenario(1, "one stream, flat out", throughput.env, throughput.run),
        Scenario(2, "concurrent streams at an LLM's pace", pace.env, pace.run, _s2_rounds),
        Scenario(3, "fan-out to many subscribers", fanout.env, fanout.run),
        Scenario(4, "resume a finished stream", resume.env, resume.run),
        Scenario(5, "time to first event", first_event.env, first_event.run),
        Scenario(6, "memory per stream and per subscriber", footprint.env, footprint.run),
        Scenario(7, "a finished answer, raw and compacted", compaction.env, compaction.run),
        Scenario(8, "fan-in against single source", fan_in.env, fan_in.run, _s8_rounds),
    )
}

__all__ = ["SCENARIOS", "Compare", "Context", "Figure", "Scenario", "median_figures"]
