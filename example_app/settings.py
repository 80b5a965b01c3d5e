"""The demo's configuration, read from the environment so that tests and deployments need no
code change to switch the backend, the model or the pace."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the demo reads from the environment, with its defaults."""

    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    tokens_per_s: float = 30.0
    openai_model: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    worker: bool = False
    tool_worker: bool = False
    compact_after_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Read `STREAMHUB_REDIS_URL`, `HOST`, `PORT`, `STREAMHUB_DEMO_TOKENS_PER_S`,
        `STREAMHUB_DEMO_WORKER`, `STREAMHUB_DEMO_TOOL_WORKER`, `STREAMHUB_COMPACT_AFTER_S` and
        the `OPENAI_*` variables; an unset or empty variable keeps the default."""

        def get(name: str) -> str | None:
            return env.get(name) or None

        return cls(
            redis_url=get("STREAMHUB_REDIS_URL"),
            host=get("HOST") or cls.host,
            port=int(get("PORT") or cls.port),
            tokens_per_s=float(get("STREAMHUB_DEMO_TOKENS_PER_S") or cls.tokens_per_s),
            openai_model=get("OPENAI_MODEL"),
            openai_base_url=get("OPENAI_BASE_URL"),
            openai_api_key=get("OPENAI_API_KEY"),
            worker=(get("STREAMHUB_DEMO_WORKER") or "0").lower() in ("1", "true", "yes"),
            tool_worker=(get("STREAMHUB_DEMO_TOOL_WORKER") or "0").lower() in ("1", "true", "yes"),
            compact_after_s=float(get("STREAMHUB_COMPACT_AFTER_S") or cls.compact_after_s),
        )

    def describe_backend(self) -> str:
        """Where the streams live, for the startup log; a password in the URL is masked."""
        if self.redis_url is None:
            return "in memory (set STREAMHUB_REDIS_URL to share streams between instances)"
        return f"in Redis at {mask_password(self.redis_url)}"


def mask_password(url: str) -> str:
    """`url` with the password replaced by `****`, in the user info and in a `password=`
    query parameter (redis-py reads it there in `unix://` URLs)."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hosts = parts.netloc.rpartition("@")
        url = url.replace(parts.netloc, f"{userinfo.partition(':')[0]}:****@{hosts}", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1****", url)
