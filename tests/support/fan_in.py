"""Checks of fanned-in streams: one gapless order, each source's own order kept, each
source ended once, and the generation's own end last."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence

import anyio

from fastapi_streamhub import StreamEvent


def by_source(events: Sequence[StreamEvent]) -> dict[str, list[object]]:
    """What each source produced, in its order, `joined` and ends excluded."""
    found: dict[str, list[object]] = {}
    for event in events:
        sourced = event.sourced
        if not sourced.terminal and sourced.event != "joined":
            found.setdefault(sourced.source, []).append(sourced.value)
    return found


def source_ends(events: Sequence[StreamEvent]) -> dict[str, str]:
    """How each source ended (`source` envelopes only)."""
    ends: dict[str, str] = {}
    for event in events:
        sourced = event.sourced
        if event.event == "source" and sourced.terminal:
            assert sourced.source not in ends, f"{sourced.source!r} ended twice"
            assert sourced.event is not None
            ends[sourced.source] = sourced.event
    return ends


def assert_fanned_in(
    events: Sequence[StreamEvent],
    produced: Mapping[str, Sequence[object]],
    ends: Mapping[str, str],
    terminal: str = "done",
) -> None:
    """`events` are one generation's from seq 1 without a gap: each source's values in
    its own order, each source's end after its values, the generation's end last."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len({e.generation for e in events}) == 1
    assert by_source(events) == {name: list(values) for name, values in produced.items()}
    assert source_ends(events) == dict(ends)
    ended: set[str] = set()
    for event in events[:-1]:
        assert event.sourced.source not in ended, f"{event} after its source ended"
        if event.sourced.terminal:
            ended.add(event.sourced.source)
    assert events[-1].event == terminal, events[-1]
    assert not any(event.terminal for event in events[:-1])


async def paced(values: Sequence[object], delay_s: float = 0.001) -> AsyncGenerator[object, None]:
    """Yields `values` with a pause between them, so sources interleave."""
    for value in values:
        yield value
        await anyio.sleep(delay_s)
