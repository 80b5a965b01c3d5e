"""`python -m benchmarks`: parse flags, run, print the table, write the JSON."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from benchmarks import report, runner
from benchmarks.processes import REPO, TARGETS, ServerError, Target
from benchmarks.scenarios import SCENARIOS
from benchmarks.sizes import FULL, SMOKE
from benchmarks.sse_client import StreamBrokenError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="fastapi-streamhub (memory, Redis, Redis Cluster) against plain sse-starlette.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it all works")
    parser.add_argument(
        "--scenarios",
        type=_numbers,
        default=sorted(SCENARIOS),
        help="comma-separated scenario numbers, e.g. 1,4 (default: all)",
    )
    parser.add_argument(
        "--targets",
        type=_targets,
        default=list(TARGETS),
        help="comma-separated subset of baseline,memory,redis,cluster (default: all)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each server with py-spy; hot functions go to benchmarks/results/",
    )
    return parser.parse_args(argv)


def _numbers(text: str) -> list[int]:
    numbers = sorted({int(n) for n in text.split(",")})
    if unknown := set(numbers) - set(SCENARIOS):
        raise argparse.ArgumentTypeError(f"no scenario {sorted(unknown)}")
    return numbers


def _targets(text: str) -> list[Target]:
    names = text.split(",")
    if unknown := set(names) - set(TARGETS):
        raise argparse.ArgumentTypeError(f"unknown targets {sorted(unknown)}")
    return [t for t in TARGETS if t in names]


def main(argv: list[str] | None = None) -> int:
    """Exit 1 on any broken stream or server error; a missed target is only reported."""
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    profile_dir = report.new_profile_dir() if args.profile else None
    try:
        results, machine = runner.run(args.scenarios, args.targets, sizes, profile_dir)
    except (StreamBrokenError, ServerError, TimeoutError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    rows = report.rows(results)
    checks = report.checks(rows)
    print(report.table(rows, args.targets))
    print()
    print(report.check_lines(checks))
    for target, reason in machine["skipped_targets"].items():
        print(f"\nTARGET {target.upper()} NOT MEASURED (its column is empty): {reason}")
    meta = {"smoke": args.smoke, "machine": machine, "sizes": asdict(sizes)}
    path = report.write_json(rows, checks, meta)
    print(f"\nwritten: {path.relative_to(REPO)}")
    if profile_dir:
        summary = profile_dir / "hot-functions.txt"
        summary.write_text(report.profile_summary(profile_dir))
        print(f"written: {summary.relative_to(REPO)}")
    return 0
