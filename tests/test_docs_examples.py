"""The documentation's example programs run, and print exactly what the docs show.

Each `docs/examples/<name>.py` has an async `main()`; its output is compared with
`docs/examples/<name>.out`, which the docs pages include next to the code. The
README's quickstart must be the code that `quickstart.py` runs.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import anyio
import pytest

import fastapi_streamhub
from tests.support.uvicorn_server import UvicornServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


def load(name: str) -> ModuleType:
    """Import an example afresh (each has its own module-level hub and app)."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_examples_are_all_here() -> None:
    assert NAMES == [
        "ai_sdk_chat",
        "cancel",
        "client",
        "fastapi_app",
        "finish_hook",
        "openai_chat",
        "publish_subscribe",
        "quickstart",
    ]
    for name in NAMES:
        assert (EXAMPLES / f"{name}.out").is_file(), f"{name}.py has no expected output"


@pytest.mark.anyio
@pytest.mark.parametrize("name", NAMES)
async def test_example_prints_what_the_docs_show(
    name: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_uvicorn_server: Callable[..., UvicornServer],
) -> None:
    if name in ("openai_chat", "ai_sdk_chat"):  # their model: a local OpenAI-compatible server
        upstream = make_uvicorn_server("tests.apps.fake_openai_v2:app")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{upstream.base_url}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
        monkeypatch.setenv("OPENAI_MODEL", "weather")
    module = load(name)
    with anyio.fail_after(10):
        await module.main()
    assert capsys.readouterr().out == (EXAMPLES / f"{name}.out").read_text("utf-8")


def _section(text: str, name: str) -> str:
    match = re.search(
        rf"^# --8<-- \[start:{name}\]\n(.*?)^\s*# --8<-- \[end:{name}\]\n",
        text,
        re.MULTILINE | re.DOTALL,
    )
    assert match is not None, f"no snippet section {name!r}"
    return match[1]


def test_readme_quickstart_is_the_code_that_runs() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```\n", readme, re.MULTILINE | re.DOTALL)
    assert blocks, "README.md has no python block"
    quickstart = _section((EXAMPLES / "quickstart.py").read_text("utf-8"), "app")
    assert blocks[0] == quickstart


def test_the_api_page_covers_every_public_name() -> None:
    page = (ROOT / "docs" / "api.md").read_text("utf-8")
    documented = set(re.findall(r"^::: fastapi_streamhub\.(\w+)$", page, re.MULTILINE))
    assert documented >= set(fastapi_streamhub.__all__)
