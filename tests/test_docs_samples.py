"""Every Python sample in README.md and docs/*.md runs as written.

Each ```python block runs on its own, in a fresh namespace from
`tests/support/docs_context.py`: empty for README.md and most pages (their samples are
self-contained), the quickstart's names and stand-ins for the reader's own code on the
pages that say they build on them. Then what the sample defined is exercised:

- an app: its lifespan runs (and starts the hub), its OpenAPI documents each streamed
  route as `text/event-stream` beside its resume, cancel and status routes, a `POST` to
  each streamed route gets the whole answer up to `done`, and its status says `done`;
  an `@ai_sdk_stream` route gets `useChat`'s body and answers the same text as
  `text-delta` parts, up to `finish` and `[DONE]`;
- a hub and no app: it starts and answers a status query. A Redis URL in a sample is
  replaced by the URL of this test's own `redis-server`.

Two kinds of block do not run here. A snippet include (`--8<-- "quickstart.py:app"`)
must name a file and section of `docs/examples/`, which `tests/test_docs_examples.py`
runs. A block that cannot run alone carries `<!-- fragment: why -->` on the line before
its fence; it must still parse. Without that note a block runs, so a sample is never
skipped by accident.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from fastapi_streamhub import StreamHub
from tests.support.docs_context import context_for
from tests.support.markdown import Block, code_blocks
from tests.support.sse import read_events

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLES = [
    block
    for page in PAGES
    for block in code_blocks(page, root=ROOT)
    if block.lang in ("python", "py")
]
PROMPT = "Hello resumable world"
ANSWER = ["Hello ", "resumable ", "world "]  # what the quickstart and the `llm` stand-in yield
_INCLUDE = re.compile(r'^--8<-- "(?P<file>[^":]+)(?::(?P<section>[\w-]+))?"$')


def test_the_samples_are_found_on_every_page_that_has_them() -> None:
    pages = {block.page for block in SAMPLES}
    expected = {"README.md", "docs/index.md", "docs/quickstart.md", "docs/faq.md"}
    assert pages >= expected | {"docs/security.md"}
    notes = [block.note for block in SAMPLES if block.note is not None]
    assert all(note.kind == "fragment" and note.text for note in notes), notes


def test_blocks_notes_and_indented_blocks_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text\n\n<!-- fragment: needs your app -->\n```python\nx = 1\n```\n\n"
        "- item:\n\n    ```sh\n    make demo\n      indented\n    ```\n\n"
        "<!-- shell: name -->\n~~~~bash\necho ```\n~~~~\n",
        "utf-8",
    )
    blocks = code_blocks(page, root=tmp_path)
    assert [(b.where, b.lang, b.text) for b in blocks] == [
        ("page.md:4", "python", "x = 1\n"),
        ("page.md:10", "sh", "make demo\n  indented\n"),
        ("page.md:16", "bash", "echo ```\n"),
    ]
    assert [(b.note.kind, b.note.text) if b.note else None for b in blocks] == [
        ("fragment", "needs your app"),
        None,
        ("shell", "name"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("block", SAMPLES, ids=[block.where for block in SAMPLES])
async def test_sample_runs(block: Block, request: pytest.FixtureRequest) -> None:
    if _INCLUDE.match(block.text.strip()):
        _check_includes(block)
        return
    if block.note is not None:
        ast.parse(block.text, filename=block.where)
        return
    source = block.text
    for url in _redis_urls(source):
        source = source.replace(url, repr(request.getfixturevalue("redis_url")))
    namespace = {"__name__": "docs_sample", **context_for(block.page)}
    before = dict(namespace)
    exec(compile(source, block.where, "exec"), namespace)
    defined = {name for name, value in namespace.items() if before.get(name) is not value}
    kinds = {
        "streams": "@resumable_stream" in source or "@dispatched_stream" in source,
        "ai_sdk": "@ai_sdk_stream" in source,
    }
    with anyio.fail_after(10):
        await _exercise(namespace, defined, **kinds)


def _check_includes(block: Block) -> None:
    for line in block.text.strip().splitlines():
        match = _INCLUDE.match(line)
        assert match is not None, f"{block.where}: {line!r} mixes an include with code"
        text = (EXAMPLES / match["file"]).read_text("utf-8")
        if match["section"]:
            assert f"# --8<-- [start:{match['section']}]" in text, f"{block.where}: {line}"
            assert f"# --8<-- [end:{match['section']}]" in text, f"{block.where}: {line}"


def _redis_urls(source: str) -> list[str]:
    """The string literals (as written) in `source` that hold a Redis URL."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING:
            value = ast.literal_eval(token.string)
            if isinstance(value, str) and re.match(r"rediss?(\+sentinel)?://", value):
                found.append(token.string)
    return found


async def _exercise(
    namespace: dict[str, Any], defined: set[str], *, streams: bool, ai_sdk: bool
) -> None:
    app, hub = namespace.get("app"), namespace.get("hub")
    if "hub" in defined and "app" not in defined:
        assert isinstance(hub, StreamHub)
        async with hub:
            assert await hub.status("docs:sample") is None
    elif isinstance(app, FastAPI):
        hub = hub if isinstance(hub, StreamHub) else None
        await _exercise_app(app, hub, streams=streams, ai_sdk=ai_sdk)


async def _exercise_app(
    app: FastAPI, hub: StreamHub | None, *, streams: bool, ai_sdk: bool
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://docs") as client,
    ):
        assert hub is None or hub.started, "the app's lifespan did not start the hub"
        schema = (await client.get("/openapi.json")).json()
        paths = _streamed_paths(schema)
        assert bool(paths) == streams, f"streamed routes in OpenAPI: {paths}"
        for path in paths:
            url = re.sub(r"\{[^}]+\}", "alice-1", path)
            events = await read_events(client, "POST", url, json={"text": PROMPT})
            assert [event.json() for event in events[:-1]] == ANSWER
            assert events[-1].event == "done"
            status = await client.get(url + "/status")
            assert status.json()["status"] == "done", status.text
        chats = _ai_sdk_paths(schema)
        assert bool(chats) == ai_sdk, f"@ai_sdk_stream routes in OpenAPI: {chats}"
        for path in chats:
            await _chat(client, path)


_CHAT = {
    "id": "alice-1",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": PROMPT}]}],
    "trigger": "submit-message",
}


async def _chat(client: httpx.AsyncClient, path: str) -> None:
    """What `useChat` sends, and the answer it reads: the text, then `finish`, `[DONE]`."""
    events = await read_events(client, "POST", path, json=_CHAT)
    assert events[-1].data == "[DONE]"
    parts = [event.json() for event in events[:-1]]
    assert [part["delta"] for part in parts if part["type"] == "text-delta"] == ANSWER
    assert parts[-1]["type"] == "finish", parts[-1]
    status = await client.get(f"{path}/alice-1/status")
    assert status.json()["status"] == "done", status.text


def _ai_sdk_paths(schema: dict[str, Any]) -> list[str]:
    """The `POST` routes served as the AI SDK's stream: their mounted routes take the chat
    id as a path segment."""
    paths: dict[str, Any] = schema["paths"]
    found = []
    for path, operations in paths.items():
        if "post" in operations and f"{path}/{{id}}/stream" in paths:
            assert {f"{path}/{{id}}/cancel", f"{path}/{{id}}/status"} <= paths.keys()
            found.append(path)
    return found


def _streamed_paths(schema: dict[str, Any]) -> list[str]:
    """The `POST` routes that have resume, cancel and status routes beside them; each
    must be documented as an event stream."""
    paths: dict[str, Any] = schema["paths"]
    found = []
    for path, operations in paths.items():
        if "post" in operations and f"{path}/stream" in paths:
            assert {f"{path}/cancel", f"{path}/status"} <= paths.keys()
            for answer in (operations["post"], paths[f"{path}/stream"]["get"]):
                assert "text/event-stream" in answer["responses"]["200"]["content"], answer
            found.append(path)
    return found
