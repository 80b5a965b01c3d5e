"""An event-stream server that misbehaves on purpose, for the client's protocol edge cases.

The hub never repeats an event or leaves a gap, but a proxy or a buggy server might, and
a client must stay exact anyway; the hub's unstored `error` repeats the last id by design.
Each script is the list of answers to its 1st, 2nd, ... `GET /s/{script}/stream`;
`GET /requests/{script}` lists the `Last-Event-ID` of each request received (None: none).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import FastAPI, Header
from starlette.responses import Response

G = "Gscripted"
RETRY = "retry: 10\n\n"
PING = ": ping\n\n"
LAGGED = ": lagged: the client read too slowly; resume from the last event id\n\n"


def event(seq: int, data: object, name: str | None = None) -> str:
    line = f"event: {name}\n" if name else ""
    return f"id: {G}:{seq}\n{line}data: {json.dumps(data)}\n\n"


def stream(*parts: str) -> Response:
    return Response(RETRY + "".join(parts), media_type="text/event-stream")


UNAVAILABLE = {"message": "The stream's storage is unavailable.", "reason": "unavailable"}

SCRIPTS: dict[str, list[Response]] = {
    # The hub's unstored end: an `error` repeating the id of the last event received.
    "unstored": [stream(event(1, "a"), PING, event(2, "b"), PING, event(2, UNAVAILABLE, "error"))],
    # The second answer repeats two events the client already has.
    "replay": [
        stream(event(1, "a"), event(2, "b"), event(3, "c")),
        stream(event(2, "b"), event(3, "c"), event(4, "d"), event(5, {}, "done")),
    ],
    # Event 2 is missing from the first answer: the client must resume after event 1.
    # (A gap before a text event would be a compacted run of text, taken as it is.)
    "gap": [
        stream(event(1, "a"), event(3, "c", "note")),
        stream(event(2, "b"), event(3, "c", "note"), event(4, {}, "done")),
    ],
    # A compacted generation: text events that stand for runs of tokens skip seqs.
    "compacted": [
        stream(event(1, "a", "prompt"), event(4, "bcd"), event(6, "ef"), event(7, {}, "done"))
    ],
    # The hub's end for a reader that fell behind: a comment, and no terminal event.
    "lagged": [
        stream(event(1, "a"), event(2, "b"), LAGGED),
        stream(event(3, "c"), event(4, {}, "done")),
    ],
    # Busy, then fine: a 503 with Retry-After is retried.
    "busy": [
        Response('{"detail":"busy"}', 503, {"Retry-After": "0"}, "application/json"),
        stream(event(1, "a"), event(2, {}, "done")),
    ],
    # Not an event stream at all.
    "json": [Response('{"hello":"world"}', media_type="application/json")],
}

app = FastAPI()
requests: dict[str, list[str | None]] = {}


@app.get("/s/{script}/stream")
async def play(
    script: str, last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None
) -> Response:
    received = requests.setdefault(script, [])
    received.append(last_event_id)
    answers = SCRIPTS[script]
    return answers[min(len(received), len(answers)) - 1]


@app.get("/requests/{script}")
async def received_cursors(script: str) -> list[str | None]:
    return requests.get(script, [])
