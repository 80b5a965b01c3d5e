"""The two servers under test, run by uvicorn in a subprocess (`--factory`).

Both serve the same token source on the same routes, so the load generator
cannot tell them apart except by speed:

- `POST /chat/{chat_id}` starts a stream and streams it;
- `GET /chat/{chat_id}/stream` reads it (whole, or after `Last-Event-ID` /
  `?last_event_id=`), then follows it live;
- `POST /gate/{chat_id}` releases a gated stream (see `BENCH_GATED`);
- `GET /health` answers once the app is up.

The baseline is plain `sse-starlette`: `EventSourceResponse` over a generator,
with the least machinery the resume and fan-out scenarios need (a list of past
events and one queue per live reader). The other is fastapi-streamhub's
`@resumable_stream`, on the memory backend or, with `BENCH_REDIS_URL`, Redis.

Environment: `BENCH_TOKENS` (tokens per stream), `BENCH_PACE_MS` (pause between
tokens), `BENCH_GATED` (1: stop after the first token until the gate opens, so
readers can attach before the stream goes live), `BENCH_TEXT` (1: the tokens are the
text of a long answer, `benchmarks/answer_text.py`, instead of JSON objects),
`BENCH_COMPACT_AFTER_S` (the hub's `compact_after_s`; fastapi-streamhub also serves
`POST /compact/{chat_id}`, which compacts a finished stream now), `BENCH_REDIS_URL`.
fastapi-streamhub's start route also takes `?sources=<k>&tokens=<n>`: the stream's n
tokens are then written by k sources of one generation (`producer.spawn`), each with its
share of them at k times the pace, so the stream keeps the rate of a single-source one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from benchmarks.answer_text import answer_tokens

TEXT = " tok"  # about one LLM token


@dataclass(frozen=True)
class Workload:
    """What every stream of this server yields, read from the environment."""

    tokens: int
    pace_s: float
    gated: bool
    text: bool = False
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Workload:
        return cls(
            tokens=int(os.environ.get("BENCH_TOKENS", "100")),
            pace_s=float(os.environ.get("BENCH_PACE_MS", "0")) / 1000,
            gated=os.environ.get("BENCH_GATED", "0") == "1",
            text=os.environ.get("BENCH_TEXT", "0") == "1",
        )

    def gate(self, chat_id: str) -> asyncio.Event:
        return self.gates.setdefault(chat_id, asyncio.Event())

    async def tokens_for(
        self, chat_id: str, sources: int = 1, tokens: int | None = None, index: int = 0
    ) -> AsyncIterator[dict[str, Any] | str]:
        """Token payloads stamped with their send time (`t`, `time.time()`), or with
        `BENCH_TEXT` the answer's text tokens. With `sources`, the share of source
        `index`: its part of the tokens at `sources` times the pace, its phase shifted by
        its index, so that all of them together keep the rate and the spacing of one
        stream (sources in step would hand the writer bursts, cheaper to store)."""
        if self.text:
            for token in answer_tokens(self.tokens):
                yield token
            return
        pace_s = self.pace_s * sources
        if index:
            await asyncio.sleep(self.pace_s * index)
        for i in range(1, (tokens or self.tokens) // sources + 1):
            if i > 1 and pace_s:
                await asyncio.sleep(pace_s)
            yield {"i": i, "t": time.time(), "text": TEXT}
            if i == 1 and self.gated:
                await self.gate(chat_id).wait()


def _add_common_routes(app: FastAPI, workload: Workload) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/gate/{chat_id}")
    async def open_gate(chat_id: str) -> dict[str, str]:
        workload.gate(chat_id).set()
        return {"status": "open"}


@dataclass
class _Channel:
    """What the baseline keeps per chat: its events so far and its live readers."""

    history: list[ServerSentEvent] = field(default_factory=list)
    readers: set[asyncio.Queue[ServerSentEvent]] = field(default_factory=set)

    def publish(self, event: ServerSentEvent) -> None:
        self.history.append(event)
        for queue in self.readers:
            queue.put_nowait(event)

    async def follow(self, after: int) -> AsyncIterator[ServerSentEvent]:
        queue: asyncio.Queue[ServerSentEvent] = asyncio.Queue()
        backlog = self.history[after:]  # taken as the reader is added: no gap, no overlap
        self.readers.add(queue)
        last = backlog[-1] if backlog else None
        try:
            for event in backlog:
                yield event
            while last is None or last.event != "done":
                last = await queue.get()
                yield last
        finally:
            self.readers.discard(queue)


def create_baseline_app() -> FastAPI:
    """Plain sse-starlette: the yardstick every figure is divided by."""
    workload = Workload.from_env()
    channels: dict[str, _Channel] = {}
    app = FastAPI()
    _add_common_routes(app, workload)

    async def produce(chat_id: str, channel: _Channel) -> AsyncIterator[ServerSentEvent]:
        seq = 0
        async for payload in workload.tokens_for(chat_id):
            seq += 1
            event = ServerSentEvent(data=json.dumps(payload), id=str(seq))
            channel.publish(event)
            yield event
        done = ServerSentEvent(data="{}", event="done", id=str(workload.tokens + 1))
        channel.publish(done)
        yield done

    @app.post("/chat/{chat_id}")
    async def chat(chat_id: str) -> EventSourceResponse:
        channel = channels[chat_id] = _Channel()
        return EventSourceResponse(produce(chat_id, channel))

    @app.get("/chat/{chat_id}/stream")
    async def resume(
        chat_id: str,
        last_event_id: str = "0",
        header_cursor: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        after = int(header_cursor or last_event_id)
        return EventSourceResponse(channels[chat_id].follow(after))

    return app


def create_streamhub_app() -> FastAPI:
    """fastapi-streamhub, memory backend unless `BENCH_REDIS_URL` is set."""
    # the baseline never loads it
    from fastapi_streamhub import StreamHub, current_producer, resumable_stream

    workload = Workload.from_env()
    url = os.environ.get("BENCH_REDIS_URL")
    compact_after_s = float(os.environ.get("BENCH_COMPACT_AFTER_S", "10"))
    hub = (
        StreamHub.from_url(url, compact_after_s=compact_after_s)
        if url
        else StreamHub(compact_after_s=compact_after_s)
    )
    app = FastAPI(lifespan=hub.lifespan)
    _add_common_routes(app, workload)

    @app.post("/chat/{chat_id}")
    @resumable_stream("chat:{chat_id}")
    async def chat(
        chat_id: str, sources: int = 1, tokens: int | None = None
    ) -> AsyncIterator[dict[str, Any] | str]:
        producer = current_producer()
        for index in range(1, sources):
            share = workload.tokens_for(chat_id, sources, tokens, index)
            producer.spawn(f"tool-{index}", share)
        async for payload in workload.tokens_for(chat_id, sources, tokens):
            yield payload

    @app.post("/compact/{chat_id}")
    async def compact(chat_id: str) -> dict[str, bool]:
        return {"compacted": await hub.compact(f"chat:{chat_id}")}

    return app
