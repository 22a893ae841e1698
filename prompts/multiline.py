"""Should the completion at the cursor span several lines, or just finish the current one?

Several lines at the start of an empty block and under a comment that describes code to write;
one line everywhere else, which is what a user expects mid-code and what comes back fastest.
The decision reads the text around the cursor first (cheap: it runs on every keystroke) and asks
tree-sitter only for the last case, a body that holds nothing but a docstring.
"""

from __future__ import annotations

from prompts.languages import GRAMMARS, CodeRules, code_rules
from prompts.scope import scope_at
from prompts.text import indent_width, line_bounds


def _strip_comment(line: str, comment: str) -> str:
    # Good enough for deciding how a line ends; a comment marker inside a string is rare there.
    index = line.find(comment)
    return (line[:index] if index != -1 else line).rstrip()


def opens_block(line: str, rules: CodeRules) -> bool:
    """Whether the line ends by opening a block (`if x:`, `fn f() {`), comments aside."""
    code = _strip_comment(line, rules.line_comment).strip()
    if not code.endswith(rules.block_openers):
        return False
    return rules.block_keywords is None or rules.block_keywords.match(code) is not None


def _neighbour_line(text: str, offset: int, step: int) -> str | None:
    """The nearest non-blank line above (step -1) or below (step 1) the cursor's line."""
    start, end = line_bounds(text, offset)
    while True:
        if step < 0:
            if start == 0:
                return None
            start, end = line_bounds(text, start - 1)
        else:
            if end >= len(text):
                return None
            start, end = line_bounds(text, end + 1)
        line = text[start:end]
        if line.strip():
            return line


def _is_comment_line(line: str, rules: CodeRules) -> bool:
    return line.strip().startswith(rules.comment_line_starts)


def wants_multiline(text: str, offset: int, language: str) -> bool:
    """Whether a completion here should be allowed to span several lines.

    Yes at the start of an empty block (after `def f():` or `{`, on its blank first line, or
    inside a function that has only a docstring), and on a blank line under a comment (the
    comment describes the code to write). No in the middle of a line, and everywhere else,
    where one line is what a user expects and what comes back fastest.
    """
    rules = code_rules(language)
    start, end = line_bounds(text, offset)
    before, after = text[start:offset], text[offset:end]
    if after.strip():
        # Only `{|}` counts: the cursor between the braces of an empty block.
        return (
            "{" in rules.block_openers
            and before.rstrip().endswith("{")
            and after.lstrip()[:1] == "}"
        )
    below = _neighbour_line(text, offset, 1)
    if before.strip():
        return opens_block(before, rules) and (
            below is None or indent_width(below) <= indent_width(before)
        )
    above = _neighbour_line(text, offset, -1)
    if above is not None and opens_block(above, rules):
        return below is None or indent_width(below) <= indent_width(above)
    if above is not None and _is_comment_line(above, rules):
        return below is None or indent_width(below) <= indent_width(before)
    if language in GRAMMARS:
        scope = scope_at(text, offset, language)
        return scope.kind != "module" and scope.body_empty
    return False
