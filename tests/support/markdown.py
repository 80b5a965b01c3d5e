"""The fenced code blocks of a Markdown page, with the note that precedes each.

A note is an HTML comment on the line just before the opening fence, invisible once
rendered: `<!-- fragment: why it cannot run alone -->` on a Python sample, or
`<!-- shell: name -->` on a shell block that `tests/test_readme_commands.py` runs.
Blocks indented under a list item are found too, and dedented.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<lang>[^\s`]*)[^`]*$")
_NOTE = re.compile(r"^\s*<!--\s*(?P<kind>[a-z-]+):\s*(?P<text>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Note:
    """`<!-- kind: text -->`."""

    kind: str
    text: str


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, its dedented text, and its note."""

    page: str
    line: int
    lang: str
    text: str
    note: Note | None

    @property
    def where(self) -> str:
        """`page:line` of the opening fence, for test ids and messages."""
        return f"{self.page}:{self.line}"


def code_blocks(path: Path, *, root: Path) -> list[Block]:
    """Every fenced block of the page at `path`, in order; `page` is relative to `root`."""
    lines = path.read_text("utf-8").splitlines()
    page = path.relative_to(root).as_posix()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = _closing_line(lines, index + 1, opening["indent"], opening["fence"])
        body = textwrap.dedent("\n".join(lines[index + 1 : end]) + "\n")
        note = _NOTE.match(lines[index - 1]) if index else None
        found = Note(note["kind"], note["text"]) if note else None
        blocks.append(Block(page, index + 1, opening["lang"], body, found))
        index = end + 1
    return blocks


def _closing_line(lines: list[str], start: int, indent: str, fence: str) -> int:
    closing = re.compile(rf"^{indent}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(start, len(lines)):
        if closing.match(lines[index]):
            return index
    raise ValueError(f"unclosed {fence} fence opened on line {start}")
