"""Storage names for a stream key: the one place where Redis keys are spelt.

Every name of one session shares a hash tag, so each script touches one slot and
runs unchanged on Redis Cluster. The user's key is escaped before it goes inside
the tag: `{` and `}` in a key cannot end the tag early, and escaping `%` first keeps
the mapping one-to-one, so two different keys never share storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import InvalidKeyError

MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("a stream key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"a stream key may have at most {MAX_KEY_LENGTH} characters")
    return key


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


_ESCAPED = re.compile("%(25|7B|7D)")
_UNESCAPED = {"25": "%", "7B": "{", "7D": "}"}
_GLOB = re.compile(r"([*?\[\]\\])")


def _unescape(escaped: str) -> str:
    return _ESCAPED.sub(lambda match: _UNESCAPED[match[1]], escaped)


@dataclass(frozen=True, slots=True)
class KeySpace:
    prefix: str = "streamhub:"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(
                "the key prefix may not contain '{' or '}': it would break the hash tag"
            )

    def _base(self, key: str) -> str:
        return f"{self.prefix}{{{_escape(key)}}}"

    def state(self, key: str) -> str:
        return self._base(key) + ":state"

    def state_pattern(self) -> str:
        """A `SCAN MATCH` pattern of every state name under this prefix (and no other)."""
        return _GLOB.sub(r"\\\1", self.prefix) + "{*}:state"

    def key_of_state(self, name: str) -> str | None:
        """The stream key whose state is stored under `name`; None if `name` is not a
        state name of this prefix."""
        if not (name.startswith(self.prefix + "{") and name.endswith("}:state")):
            return None
        escaped = name[len(self.prefix) + 1 : -len("}:state")]
        return None if "{" in escaped or "}" in escaped else _unescape(escaped)

    def events(self, key: str) -> str:
        return self._base(key) + ":events"

    def packing(self, key: str) -> str:
        """Where compaction builds the packed events before they replace the stream."""
        return self._base(key) + ":packing"

    def inbox(self, key: str) -> str:
        """Messages to the running generation; emptied when a new generation posts first."""
        return self._base(key) + ":inbox"

    def hook_index(self) -> str:
        """The sessions whose generation may owe a finish hook: one key per prefix."""
        return self.prefix + "finish-hooks"

    def event_channel(self, key: str) -> str:
        return self._base(key) + ":notify"

    def control_channel(self, key: str) -> str:
        return self._base(key) + ":control"
