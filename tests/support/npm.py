"""The npm packages of `tests/ai_sdk_client/`: the Vercel AI SDK's clients that tests drive.

`make node-deps` (part of `make test`) installs them with `npm ci` from the committed
lockfile. Without them, the tests that need them fail under CI (`CI` set, as `.ci/run`
runs) and are skipped elsewhere, with the command that installs them as the reason.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support._process import REPO_ROOT

CLIENT = REPO_ROOT / "tests" / "ai_sdk_client"
ESBUILD = CLIENT / "node_modules" / ".bin" / "esbuild"


def require_npm_packages() -> str:
    """The path of `node`, once the packages are installed; fails or skips otherwise."""
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        message = "Node.js or the npm packages are missing: run `make node-deps` (npm ci)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node
