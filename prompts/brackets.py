"""Brackets and string literals of a piece of code: what a completion leaves open at its end,
and which closer ends it. Post-processing (prompts/postprocess.py) runs these on every answer, so
they are plain scans of the text; a parse is asked only to tell whether the cursor sits inside a
string or comment that spans lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from prompts.context import cursor_line, rest_of_line
from prompts.languages import GRAMMARS, code_rules
from prompts.nodes import ancestors
from prompts.parsing import Offsets, parse_tree

PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSING = {v: k for k, v in PAIRS.items()}
# Letters that may open a string literal before its quote (Python's f"", rb"", C++'s u8"").
_STRING_PREFIX_LETTERS = "bBfFrRuUlL8"


@dataclass
class Brackets:
    """Brackets of a piece of code, strings and comments skipped."""

    open: list[tuple[str, int]]  # openers left open, with their positions
    mismatch: int | None = None  # the first closer that does not match the innermost opener
    first_outer: int | None = None  # the first closer of a bracket opened before the text
    string_start: int | None = None  # where the string literal the text ends inside opens

    @property
    def in_string(self) -> bool:
        return self.string_start is not None


def _is_lifetime(text: str, index: int) -> bool:
    """A lifetime or label (`'a`, `'static`) rather than a character literal (`'a'`)."""
    return text[index + 1 : index + 2].isidentifier() and text[index + 2 : index + 3] != "'"


def scan_brackets(text: str, language: str) -> Brackets:
    result = Brackets(open=[])
    quote: str | None = None
    quote_at = 0
    rules = code_rules(language)
    comment = rules.line_comment
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"`" and not (rules.lifetimes and _is_lifetime(text, index)):
            quote, quote_at = char, index
        elif text.startswith(comment, index):
            newline = text.find("\n", index)
            index = len(text) if newline == -1 else newline
            continue
        elif char in PAIRS:
            result.open.append((char, index))
        elif char in _CLOSING:
            if result.open and result.open[-1][0] == _CLOSING[char]:
                result.open.pop()
            elif result.open:
                result.mismatch = index
                return result
            elif result.first_outer is None:
                result.first_outer = index
        index += 1
    if quote is not None:
        result.string_start = quote_at
    return result


def cut_open_string(text: str, prefix: str, suffix: str, language: str) -> str:
    """A one-line completion that opens a one-line string literal and leaves it open at the end
    of the line (`print(` + `f"Test {argv[1])`) ends before that string; an empty answer when
    nothing comes before it. The line would not parse, and what the model meant to quote is lost.

    Left as they are: multi-line completions, strings the user opened before the cursor, a
    cursor inside a string or comment that spans lines (a docstring), triple-quoted strings,
    backtick templates and C++ raw strings, which may all span lines.
    """
    quotes = code_rules(language).single_line_quotes
    if language not in GRAMMARS or not quotes or "\n" in text:
        return text
    before = cursor_line(prefix)
    line = before + text + rest_of_line(suffix)
    start = scan_brackets(line, language).string_start
    if start is None or start < len(before) or line[start] not in quotes:
        return text
    if line.endswith("\\") or line[max(0, start - 2) : start] == line[start] * 2:
        return text  # a continued line, or the third quote of a triple-quoted string
    letters = len(line[:start]) - len(line[:start].rstrip(_STRING_PREFIX_LETTERS))
    opening = start - letters if letters <= 2 else start
    if opening > 0 and (line[opening - 1].isalnum() or line[opening - 1] == "_"):
        opening = start  # the end of a name, not a string prefix
    if language == "cpp" and "R" in line[opening:start]:
        return text
    if opening < len(before) or _inside_literal_or_comment(prefix, suffix, language):
        return text
    kept = text[: opening - len(before)].rstrip(" \t")
    return kept if kept.strip() else ""


def _inside_literal_or_comment(prefix: str, suffix: str, language: str) -> bool:
    """The cursor is inside a string or comment of the document as it stands."""
    offsets = Offsets(prefix + suffix)
    cursor = offsets.to_byte(len(prefix))
    root = parse_tree(language, offsets.text).root_node
    for node in ancestors(root.descendant_for_byte_range(max(0, cursor - 1), cursor)):
        if "string" in node.type or "comment" in node.type or "template" in node.type:
            return node.start_byte < cursor < node.end_byte
    return False
