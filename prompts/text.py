"""Lines and indentation of plain text, shared by the prompt modules.

Offsets are str indexes. Nothing here knows a language: what a language adds (comments, block
openers) comes from prompts.languages.
"""

from __future__ import annotations

import re


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    """Start and end (before the newline) of the line holding `offset`."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end == -1 else end


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(line: str, tab_size: int = 4) -> int:
    return len(indent_of(line).expandtabs(tab_size))


def indent_length(line: str) -> int:
    """How many blank characters (spaces or tabs, each one) start the line."""
    return len(line) - len(line.lstrip(" \t"))


def snake_case(name: str) -> str:
    """`parseHTTPResponse` or `Stack.push` as a snake-case name part: `parse_httpresponse`,
    `stack_push`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace(".", "_")
