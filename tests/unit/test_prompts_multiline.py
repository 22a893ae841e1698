"""Whether a completion may span several lines."""

from __future__ import annotations

import pytest

from prompts.multiline import wants_multiline


def split(text_with_cursor: str) -> tuple[str, int]:
    """A text with `|` marking the cursor, as (text, offset)."""
    return text_with_cursor.replace("|", "", 1), text_with_cursor.index("|")


@pytest.mark.parametrize(
    ("text_with_cursor", "expected"),
    [
        ("def area(r):|\n\nprint(1)\n", True),  # end of the def line
        ("def area(r):\n    |\n", True),  # blank first line of an empty body
        ("class Point:\n    |\n", True),
        ('def area(r):\n    """Circle area."""\n    |\n', True),  # only a docstring so far
        ("# parse the header line\n|\n", True),  # under a comment describing the code
        ("total = compute(price, |)\n", False),  # mid-line
        ("def area(r):\n    x = r * r\n    |\n    return x\n", False),  # body not empty
        ("if ready:|\n    go()\n", False),  # the block already has a body
        ('config = {"name":|\n', False),  # a colon that opens no block
        ("import os|\n", False),
    ],
)
def test_wants_multiline_in_python(text_with_cursor: str, expected: bool) -> None:
    text, cursor = split(text_with_cursor)
    assert wants_multiline(text, cursor, "python") is expected


def test_wants_multiline_between_empty_braces_in_javascript() -> None:
    assert wants_multiline(*split("function sum(xs) {|}\n"), "javascript")
    assert wants_multiline(*split("function sum(xs) {\n  |\n}\n"), "javascript")
    assert not wants_multiline(*split("const n = xs.len|gth;\n"), "javascript")
    assert not wants_multiline(*split("const n = xs.length;|\n"), "javascript")


def test_wants_multiline_without_a_grammar_uses_the_text() -> None:
    assert not wants_multiline(*split("def greet(name)\n  |\nend\n"), "ruby")
    assert wants_multiline(*split("fn main() {|\n"), "unknown-language")
