"""The run's output: a Markdown table, the targets checked, and the JSON record."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import profiling
from benchmarks.processes import REPO, Target
from benchmarks.runner import Results
from benchmarks.scenarios import Compare, Figure

RESULTS_DIR = REPO / "benchmarks" / "results"


@dataclass
class Row:
    """One figure across targets, with its comparison to the baseline."""

    key: str
    label: str
    unit: str
    compare: Compare
    values: dict[str, float | None] = field(default_factory=dict)
    rounds: dict[str, list[float | None]] = field(default_factory=dict)

    def versus_baseline(self, target: str) -> float | None:
        """Ratio (or difference) to the baseline, as the figure's `compare` says."""
        base, value = self.values.get("baseline"), self.values.get(target)
        if base is None or value is None or self.compare == "none":
            return None
        if self.compare == "diff":
            return value - base
        return value / base if base else None


@dataclass
class Check:
    name: str
    value: float | None
    met: bool | None  # None: not measured in this run


def rows(results: Results) -> list[Row]:
    merged: dict[str, Row] = {}
    for by_target in results.values():
        for target, figures in by_target.items():
            for fig in figures:
                row = merged.setdefault(fig.key, _row(fig))
                row.values[target] = fig.value
                if fig.rounds:
                    row.rounds[target] = list(fig.rounds)
    return sorted(merged.values(), key=lambda row: row.key.split(".")[0])  # stable: by scenario


def _row(fig: Figure) -> Row:
    return Row(fig.key, fig.label, fig.unit, fig.compare)


def table(all_rows: list[Row], targets: list[Target]) -> str:
    head = ["figure", "unit", *targets]
    lines = [_md(head), _md(["---"] * len(head))]
    for row in all_rows:
        lines.append(_md([row.label, row.unit, *(_cell(row, t) for t in targets)]))
    return "\n".join(lines)


def _md(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(row: Row, target: str) -> str:
    text = _num(row.values.get(target))
    versus = row.versus_baseline(target) if target != "baseline" else None
    if versus is None:
        return text
    return f"{text} ({versus:+.2f})" if row.compare == "diff" else f"{text} ({versus:.2f}x)"


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    for bound, fmt in ((1000, "{:,.0f}"), (100, "{:.0f}"), (10, "{:.1f}")):
        if abs(value) >= bound:
            return fmt.format(value)
    return f"{value:.2f}"


def checks(all_rows: list[Row]) -> list[Check]:
    """The issue's targets, all on the Redis backend."""
    by_key = {row.key: row for row in all_rows}

    def check(name: str, key: str, ok: Callable[[float], bool], raw: bool = False) -> Check:
        value = None
        if row := by_key.get(key):
            value = row.values.get("redis") if raw else row.versus_baseline("redis")
        return Check(name, value, None if value is None else ok(value))

    return [
        check("S1 tokens/s >= 0.8x baseline", "s1.tokens_per_s", lambda v: v >= 0.8),
        check("S2 CPU per token <= 1.3x baseline", "s2.cpu_us", lambda v: v <= 1.3),
        check("S2 added p99 delay < 5 ms", "s2.delay_p99", lambda v: v < 5),
        _flat_commands(all_rows),
        check("S4 from start >= 100,000 ev/s", "s4.from_start", lambda v: v >= 1e5, raw=True),
        check("S4 from middle >= 100,000 ev/s", "s4.from_middle", lambda v: v >= 1e5, raw=True),
        check("S5 median first event <= baseline + 3 ms", "s5.median", lambda v: v <= 3),
        _compact_bytes(by_key),
        _compact_replay(by_key),
        *(
            check(
                f"S8 fan-in {what} per token <= 1.2x single source, {shape}",
                key,
                _at_most_1_2,
                raw=True,
            )
            for shape, prefix in (("1 x 8 sources", "s8.one"), ("200 x 3 sources", "s8.many"))
            for what, key in (
                ("CPU", f"{prefix}_cpu_ratio"),
                ("Redis commands", f"{prefix}_cmds_ratio"),
            )
        ),
    ]


def _at_most_1_2(ratio: float) -> bool:
    return ratio <= 1.2


def _redis(by_key: dict[str, Row], key: str) -> float | None:
    row = by_key.get(key)
    return None if row is None else row.values.get("redis")


def _compact_bytes(by_key: dict[str, Row]) -> Check:
    """Bytes of a finished answer, compacted, against its text: the issue's bound."""
    text, stored = _redis(by_key, "s7.text_bytes"), _redis(by_key, "s7.redis_compact")
    name = "S7 compacted answer <= 1.3x its text + 512 B (excess over 1.3x)"
    if text is None or stored is None:
        return Check(name, None, None)
    return Check(name, stored - 1.3 * text, stored <= 1.3 * text + 512)


def _compact_replay(by_key: dict[str, Row]) -> Check:
    """A compacted answer replays at least as fast as its token events (S4's kind)."""
    compacted, raw = _redis(by_key, "s7.replay_compact"), _redis(by_key, "s7.replay_raw")
    name = "S7 compacted replay >= token-event replay (ratio)"
    if compacted is None or raw is None:
        return Check(name, None, None)
    return Check(name, compacted / raw, compacted >= raw)


def _flat_commands(all_rows: list[Row]) -> Check:
    """Flat: the most commands per event at any fan-out within 10% of the fewest."""
    per_event = [r.values.get("redis") for r in all_rows if r.key.startswith("s3.cmds@")]
    present = [v for v in per_event if v is not None]
    if len(present) < 2 or min(present) <= 0:
        return Check("S3 Redis commands per event flat", None, None)
    spread = max(present) / min(present)
    return Check("S3 Redis commands per event flat (max/min <= 1.1)", spread, spread <= 1.1)


def check_lines(results: list[Check]) -> str:
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    return "\n".join(f"{verdict[c.met]:>12}  {c.name}: {_num(c.value)}" for c in results)


def _stamp() -> datetime:
    return datetime.now().astimezone()


def new_profile_dir() -> Path:
    path = RESULTS_DIR / f"profiles-{_stamp():%Y%m%dT%H%M%S}"
    path.mkdir(parents=True)
    return path


def profile_summary(profile_dir: Path) -> str:
    return "\n\n".join(profiling.hot_functions(raw) for raw in sorted(profile_dir.glob("s*.txt")))


def write_json(all_rows: list[Row], results: list[Check], meta: dict[str, Any]) -> Path:
    """benchmarks/results/<timestamp>.json: every figure with its baseline comparison."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _stamp()
    path = RESULTS_DIR / f"{stamp:%Y%m%dT%H%M%S}.json"
    figures = [
        {
            **asdict(r),
            "versus_baseline": {t: r.versus_baseline(t) for t in r.values if t != "baseline"},
        }
        for r in all_rows
    ]
    document = {"measured_at": stamp.isoformat(), **meta, "figures": figures}
    document["targets"] = [asdict(c) for c in results]
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
