"""The sources the command line reads back from a stored generation (`cli/_sources.py`),
on every backend: over several pages, and the same once the generation is compacted
(text runs merged, every envelope kept whole)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastapi_streamhub import StreamHub
from fastapi_streamhub.cli._sources import PAGE_EVENTS, SourceState, source_states

pytestmark = pytest.mark.anyio

TOKENS = PAGE_EVENTS + 200
"""More events than one page holds."""


async def test_sources_read_back_over_pages_and_after_compaction(
    make_hub: Callable[..., StreamHub],
) -> None:
    async with make_hub(compact=False) as hub:
        producer, _ = await hub.register("fan")
        search = producer.source("search")
        slow = producer.source("slow")
        await search.publish({"found": 1})
        for i in range(TOKENS):
            await producer.publish(f"t{i} ")
            if i == PAGE_EVENTS // 2:
                await search.close()
        await slow.publish("half")
        await slow.fail("The tool timed out.", reason="timeout")
        await producer.publish("end")
        assert await producer.close() == "done"
        stopped, _ = await hub.register("stopped")
        running = stopped.source("running")
        await running.publish("x")
        await stopped.flush()
        assert await hub.cancel("stopped", wait=5.0) is not None

        expected = [
            SourceState("main", "done"),
            SourceState("search", "done"),
            SourceState("slow", "error", "timeout"),
        ]
        (fan,) = await hub.backend.states(["fan"])
        assert fan is not None and fan.last_seq > PAGE_EVENTS
        raw = await source_states(hub.backend, "fan", fan.generation, fan.last_seq)
        assert raw == expected
        assert await hub.compact("fan")
        compacted = await source_states(hub.backend, "fan", fan.generation, fan.last_seq)
        assert compacted == expected
        assert await source_states(hub.backend, "fan", "another generation", fan.last_seq) is None

        (cut,) = await hub.backend.states(["stopped"])
        assert cut is not None
        assert await source_states(hub.backend, "stopped", cut.generation, cut.last_seq) == [
            SourceState("main", "cancelled", "cancelled"),
            SourceState("running", "cancelled", "cancelled"),
        ]
