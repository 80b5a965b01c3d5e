"""Benchmarks: fastapi-streamhub against plain sse-starlette, side by side.

Run `python -m benchmarks` (add `--smoke` for CI's quick check); see
docs/performance.md for what each scenario measures and the latest figures.
"""
