"""Turning a raw model completion into what the editor shows: one small function per rule.

`postprocess` runs the rules in order. Each rule takes the completion text (and what it needs
of the context) and returns a shorter or equal text; "" means show nothing.
`postprocess_with_reason` also names the rule that emptied an answer, so that the diagnostics
(flashcode/stats, `flashcode eval repo`) can count which rule drops what.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prompts.brackets import PAIRS, cut_open_string, scan_brackets
from prompts.context import cursor_line, rest_of_line
from prompts.fim import ALL_SPECIAL_TEXTS
from prompts.languages import GRAMMARS, code_rules, empty_block_stub
from prompts.multiline import opens_block
from prompts.parsing import Offsets, parse_tree
from prompts.text import indent_width


@dataclass(frozen=True)
class PostprocessContext:
    prefix: str  # the document before the cursor (its end is enough)
    suffix: str  # the document after the cursor (its start is enough)
    multiline: bool
    language: str
    # Cut at these too (CompletionPrompt.stop_strings); every known FIM token always cuts.
    stop_strings: tuple[str, ...] = ()
    # Token healing (CompletionPrompt.healed): the typed text the prompt backed off from, which
    # the answer writes again first and which is dropped before any other rule runs; None when
    # the prompt was not healed (it then only left out a trailing space, unforced).
    healed: str | None = None


# --- the rules --------------------------------------------------------------------------------


def cut_at_stop_strings(text: str, stops: Iterable[str]) -> str:
    """Everything before the first stop string."""
    cut = len(text)
    for stop in stops:
        if stop:
            index = text.find(stop, 0, cut)
            if index != -1:
                cut = index
    return text[:cut]


def drop_healed_text(text: str, healed: str) -> str:
    """The answer after the typed text it was forced to write again (token healing); nothing
    when it does not start with that text, or stops inside it: it continues something else.
    Healed blanks are not forced (prompts.healing): an answer without them took them as typed."""
    if text.startswith(healed):
        return text[len(healed) :]
    return text if not healed.strip() else ""


def drop_typed_whitespace(text: str, prefix: str) -> str:
    """Leading blanks the user already typed before the cursor (the prompt left them out)."""
    line = cursor_line(prefix)
    typed = len(line) - len(line.rstrip(" \t"))
    lead = len(text) - len(text.lstrip(" \t"))
    return text[min(typed, lead) :]


def drop_indentation_mid_line(text: str, prefix: str, healed: bool = False) -> str:
    """A line's indentation where the cursor follows code on its line: the model began a new
    line in the wrong place (`str(` + `        self.assertEqual(...)`), so nothing fits.

    A healed answer comes after every blank the user typed: one more blank after a typed blank
    is the same mistake (`def ` + `       self...`), and shifting it would hide that.
    """
    line = cursor_line(prefix)
    indent = len(text) - len(text.lstrip(" \t"))
    if line.strip() and not line[-1:].isspace() and indent >= 2:
        return ""
    if healed and line.strip() and line[-1:].isspace() and indent >= 1:
        return ""
    return text


def indent_unit(prefix: str) -> str:
    """One level of the document's indentation: a tab where its lines start with tabs, else the
    smallest step in spaces between consecutive indented lines (4 when there is none)."""
    widths: list[int] = []
    for line in prefix.splitlines()[-200:]:
        if not line.strip():
            continue
        if line.startswith("\t"):
            return "\t"
        widths.append(indent_width(line))
    steps = [b - a for a, b in itertools.pairwise(widths) if b > a]
    return " " * min(steps, default=4)


def indent_after_opener(text: str, prefix: str, language: str) -> str:
    """A new line after a block opener gets one level more than the opener's line (`if n < 2:`
    then `return False` inside it, not beside it). The answer's lines from there on move
    together, so a block the model wrote keeps its own shape."""
    rules = code_rules(language)
    line = cursor_line(prefix)
    lines = text.split("\n")
    if line.strip():  # after code on the cursor's line: the answer itself opens the new line
        if len(lines) < 2 or lines[0].strip() or not opens_block(line, rules):
            return text
        opener, typed, first = line, "", 1
    else:  # on a line of blanks: the line above opens the block
        above = prefix[: len(prefix) - len(line)].rstrip("\n").rsplit("\n", 1)[-1]
        if not above.strip() or not opens_block(above, rules):
            return text
        opener, typed, first = above, line, 0
    at = next((i for i in range(first, len(lines)) if lines[i].strip()), None)
    if at is None:
        return text
    unit = indent_unit(prefix)
    shown = (typed if at == 0 else "") + lines[at]
    missing = indent_width(opener) + indent_width(unit + "x") - indent_width(shown)
    if missing <= 0:
        return text
    pad = "\t" * -(-missing // 4) if unit == "\t" else " " * missing
    moved = [pad + item if i >= at and item.strip() else item for i, item in enumerate(lines)]
    return "\n".join(moved)


def keep_first_line(text: str) -> str:
    """Single-line mode: the rest of the cursor's line only."""
    return text.split("\n", 1)[0].rstrip("\r")


_TRIVIAL = re.compile(r"^[\s\W]*$")  # blank lines, `}`, `)`, `];`: repeating them is normal
_LOOPING_RUN = re.compile(r"(.{2,30}?)\1{3,}")


def drop_repetition(text: str, cursor_line: str = "") -> str:
    """Cut a loop: a line or block of up to 4 lines three times in a row (one copy stays), or
    a phrase repeated at least four times in a row within a line (that line goes).

    `cursor_line` is the text before the cursor on its line, which the first line continues:
    with it, an indented first line compares equal to its indented repeats.
    """
    lines = text.split("\n")
    full = [cursor_line + lines[0], *lines[1:]]
    for start in range(len(full)):
        for size in range(1, 5):
            block = full[start : start + size]
            if len(block) < size or all(_TRIVIAL.match(line) for line in block):
                continue
            if (
                full[start + size : start + 2 * size] == block
                and full[start + 2 * size : start + 3 * size] == block
            ):
                return "\n".join(lines[: start + size])
        match = _LOOPING_RUN.search(lines[start])
        if match and re.search("[A-Za-z]", match.group(1)) and len(match.group(0)) >= 16:
            return "\n".join(lines[:start])
    return text


def _opens_block(line: str) -> bool:
    return line.rstrip().endswith((":", "{", "(", "["))


def _only_closers(line: str) -> bool:
    return bool(line.strip()) and re.fullmatch(r"[\s)\]}]+[;,]?\s*", line) is not None


def _first_nonblank(lines: Iterable[str]) -> str | None:
    return next((line for line in lines if line.strip()), None)


def stop_at_block_end(text: str, prefix: str, suffix: str) -> str:
    """Multi-line mode: stop where a line falls below the indentation of the cursor's block.

    The block is the one being opened when the cursor's line ends with `:` / `{` / `(` / `[`
    (its body's indentation), else the cursor's own. A closing line (`}`, `})`) at the
    block's end is kept when the suffix does not already have it, and the completion stops
    after it.
    """
    lines = text.split("\n")
    cursor = cursor_line(prefix)
    first = cursor + lines[0]
    if cursor.strip() and _opens_block(first):
        body = _first_nonblank(lines[1:])
        if body is None:
            return text
        floor = max(indent_width(body), indent_width(first) + 1)
    elif first.strip():
        floor = indent_width(first)
    else:
        floor = indent_width(cursor) if cursor else indent_width(_first_nonblank(lines) or "")
    next_suffix_line = _first_nonblank(suffix.split("\n")[1:])
    for index in range(1, len(lines)):
        line = lines[index]
        if not line.strip() or indent_width(line) >= floor:
            continue
        if _only_closers(line) and (
            next_suffix_line is None or next_suffix_line.strip() != line.strip()
        ):
            return "\n".join(lines[: index + 1])
        return "\n".join(lines[:index])
    return text


def cut_at_suffix_repeat(text: str, prefix: str, suffix: str) -> str:
    """Cut where the completion starts writing the line that already follows the cursor."""
    following = _first_nonblank(suffix.split("\n")[1:])
    if following is None:
        return text
    target = following.rstrip()
    lines = text.split("\n")
    for index, line in enumerate(lines):
        full = cursor_line(prefix) + line if index == 0 else line
        if full.strip() and full.rstrip() == target:
            return "\n".join(lines[:index])
    return text


def balance_brackets(text: str, prefix: str, suffix: str, language: str) -> str:
    """Close only the brackets the completion opened, and never one the suffix closes.

    - A closer for a bracket opened before the cursor is cut, with what follows, when the
      rest of the line starts with that closer (`foo(|)` + `x)` gives `x`).
    - A closer that does not match the completion's own opener ends the completion there.
    - Openers left open on the completion's last line are closed at its end, minus those the
      rest of the line closes beyond what the cursor's line itself still needs; but a line that
      ends with its opener (`def f(`, `x = {`) goes on over the next lines, and stays open.
    """
    rest = rest_of_line(suffix).lstrip()
    scan = scan_brackets(text, language)
    if scan.first_outer is not None and rest[:1] == text[scan.first_outer]:
        text = text[: scan.first_outer]
        scan = scan_brackets(text, language)
    if scan.mismatch is not None:
        return text[: scan.mismatch]
    last_line_start = text.rfind("\n") + 1
    open_on_last_line = [opener for opener, position in scan.open if position >= last_line_start]
    if not open_on_last_line or scan.in_string or text.rstrip().endswith(tuple(PAIRS)):
        return text
    line_needs = len(scan_brackets(cursor_line(prefix), language).open)
    rest_closers = len(rest) - len(rest.lstrip(")]}"))
    covered = max(0, rest_closers - line_needs)
    closers = [PAIRS[opener] for opener in reversed(open_on_last_line)]
    return text + "".join(closers[: max(0, len(closers) - covered)])


def trim_line_suffix_overlap(text: str, suffix: str, language: str) -> str:
    """A one-line completion that ends with the rest of the line loses that repeated end,
    unless it closes the completion's own brackets (`foo()` stays whole before `)`)."""
    rest = rest_of_line(suffix).strip()
    body = text.rstrip()
    if "\n" in text or not rest or not body.endswith(rest):
        return text
    trimmed = body[: -len(rest)]
    if len(scan_brackets(trimmed, language).open) > len(scan_brackets(body, language).open):
        return text
    return trimmed


def strip_trailing_whitespace(text: str, suffix: str) -> str:
    """Trailing spaces off every line and trailing blank lines off the end; a one-line
    completion keeps its spaces when the cursor is mid-line (they separate it from the rest)."""
    if rest_of_line(suffix).strip() and "\n" not in text:
        return text
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def _error_touches(text: str, language: str, start: int, end: int) -> bool:
    """An ERROR or MISSING node of `text`'s syntax tree touches the characters start..end."""
    offsets = Offsets(text)
    first, last = offsets.to_byte(start), offsets.to_byte(end)
    pending = [parse_tree(language, text).root_node]
    while pending:
        node = pending.pop()
        if node.end_byte < first or node.start_byte > last:
            continue
        if node.is_error or node.is_missing:
            return True
        if node.has_error:
            pending.extend(node.children)
    return False


_CUT_POINTS = re.compile(r"(?<=\w)(?=\W)|(?<=\S)(?=\s)")
_MAX_CUTS = 12  # shorter answers tried, each one parse


def cut_at_syntax_break(text: str, prefix: str, suffix: str, language: str) -> str:
    """When the cursor's line parsed before and the completion breaks it, the longest start of
    the completion, cut at a word's end, that keeps it valid (`return ` + `self.name = name`
    gives `self.name`); nothing when none does.

    A completion is not judged when it leaves a bracket or a string open, since the statement
    goes on over the next lines, nor when the line had a syntax error before it. A block it opens
    (`if n < 2:`) is given a body first, as the user writes one next.
    """
    if language not in GRAMMARS or not text.strip():
        return text
    if not cursor_line(prefix).strip() and rest_of_line(suffix).strip():
        suffix = "\n" + suffix  # at the start of a line of code, the answer is a line above it
    scan = scan_brackets(cursor_line(prefix) + text + rest_of_line(suffix), language)
    if scan.open or scan.in_string or scan.mismatch is not None or text.rstrip().endswith("\\"):
        return text
    line_start = prefix.rfind("\n") + 1
    bare = prefix + suffix
    if _error_touches(bare, language, line_start, _through_next_line(bare, len(prefix))):
        return text
    if _keeps_syntax(text, prefix, suffix, language):
        return text
    cuts = [m.start() for m in _CUT_POINTS.finditer(text.rstrip())]
    for cut in reversed(cuts[-_MAX_CUTS:]):
        shorter = text[:cut]
        if shorter.strip() and _keeps_syntax(shorter, prefix, suffix, language):
            return shorter
    return ""


def _keeps_syntax(text: str, prefix: str, suffix: str, language: str) -> bool:
    """No syntax error from the cursor's line start to the end of the line after `text`'s last
    (a statement cut short is often an error at the next line's start)."""
    line_start = prefix.rfind("\n") + 1
    stub = empty_block_stub((cursor_line(prefix) + text).rsplit("\n", 1)[-1], language)
    for tail in ("", stub) if stub else ("",):
        completed = prefix + text + tail + suffix
        end = _through_next_line(completed, len(prefix) + len(text) + len(tail))
        if not _error_touches(completed, language, line_start, end):
            return True
    return False


def _through_next_line(text: str, offset: int) -> int:
    """The end of the line after the one `offset` is on."""
    end = text.find("\n", offset)
    if end == -1:
        return len(text)
    following = text.find("\n", end + 1)
    return len(text) if following == -1 else following


def drop_if_empty(text: str) -> str:
    return text if text.strip() else ""


def _rules(ctx: PostprocessContext) -> list[tuple[str, Callable[[str], str]]]:
    """The rules `postprocess` runs for this context, in order, each with its name."""
    stops = (*ALL_SPECIAL_TEXTS, *ctx.stop_strings)
    line = cursor_line(ctx.prefix)
    healed = ctx.healed
    # On a line of blanks only, the model writes its line from the line's start, as in its FIM
    # training: the blanks typed are cut from its answer as typed, healed or not.
    whole_line = not line.strip()
    rules: list[tuple[str, Callable[[str], str]]] = []
    if healed and not whole_line:
        rules.append(("drop_healed_text", lambda text: drop_healed_text(text, healed)))
    rules.append(("cut_at_stop_strings", lambda text: cut_at_stop_strings(text, stops)))
    if not ctx.multiline:
        rules.append(("keep_first_line", keep_first_line))
    # A healed prompt mid-line holds every typed blank but those the answer rewrote.
    if healed is None or whole_line:
        rules.append(
            ("drop_typed_whitespace", lambda text: drop_typed_whitespace(text, ctx.prefix))
        )
    rules += [
        (
            "drop_indentation_mid_line",
            lambda text: drop_indentation_mid_line(text, ctx.prefix, healed is not None),
        ),
        ("drop_repetition", lambda text: drop_repetition(text, line)),
        ("indent_after_opener", lambda text: indent_after_opener(text, ctx.prefix, ctx.language)),
    ]
    if ctx.multiline:
        rules.append(
            ("stop_at_block_end", lambda text: stop_at_block_end(text, ctx.prefix, ctx.suffix))
        )
    rules += [
        ("cut_at_suffix_repeat", lambda text: cut_at_suffix_repeat(text, ctx.prefix, ctx.suffix)),
        (
            "cut_open_string",
            lambda text: cut_open_string(text, ctx.prefix, ctx.suffix, ctx.language),
        ),
        (
            "balance_brackets",
            lambda text: balance_brackets(text, ctx.prefix, ctx.suffix, ctx.language),
        ),
        (
            "trim_line_suffix_overlap",
            lambda text: trim_line_suffix_overlap(text, ctx.suffix, ctx.language),
        ),
        (
            "cut_at_syntax_break",
            lambda text: cut_at_syntax_break(text, ctx.prefix, ctx.suffix, ctx.language),
        ),
        ("strip_trailing_whitespace", lambda text: strip_trailing_whitespace(text, ctx.suffix)),
        ("drop_if_empty", drop_if_empty),
    ]
    return rules


@dataclass(frozen=True)
class Trace:
    """What post-processing did: the text shown, the rule that emptied it (None when something is
    shown or `raw` was empty already), and every rule that changed it, in order."""

    text: str
    emptied_by: str | None
    changed_by: tuple[str, ...]


def postprocess_traced(raw: str, ctx: PostprocessContext) -> Trace:
    """The completion to show, with the rules that changed or emptied it. A healed answer that
    ends at the cursor, having only rewritten the typed text, is empty without a rule."""
    if ctx.healed and ctx.healed.strip() and ctx.healed.startswith(raw):
        return Trace("", None, ())
    text = raw
    changed: list[str] = []
    for name, rule in _rules(ctx):
        shortened = rule(text)
        if shortened != text:
            changed.append(name)
        if text and not shortened:
            return Trace("", name, tuple(changed))  # every rule maps "" to "": the first wins
        text = shortened
    return Trace(text, None, tuple(changed))


def postprocess_with_reason(raw: str, ctx: PostprocessContext) -> tuple[str, str | None]:
    """The completion to show, and the name of the rule that emptied it (postprocess_traced)."""
    trace = postprocess_traced(raw, ctx)
    return trace.text, trace.emptied_by


def postprocess(raw: str, ctx: PostprocessContext) -> str:
    """The completion to show, or "" to show nothing."""
    return postprocess_with_reason(raw, ctx)[0]
