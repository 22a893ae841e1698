"""CRUD patterns: the code at the cursor as an instance of code already written for another entity.

Code written for one entity is abstracted (prompts.entities): the abstracted lines before a
position form the pattern key; the abstracted line at that position, with the block nested
under it, is the stored completion (a `PatternExample`). In `OrderRepository` the same key comes
back as the cursor's `PatternSite`, and prompts.pattern_checks re-instantiates the stored
completion for the new entity and decides whether a user could accept it.

`mine` finds the examples in a document; `PatternLearner` mines documents as they change, each
changed part once; `example_from_completion` learns from what the model wrote.

Pure text: no file system, no model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from prompts.entities import (
    Abstractor,
    Entity,
    abstractor_for,
    find_entity,
    has_placeholder_chars,
    starts_other_entity,
)
from prompts.parsing import changed_span
from prompts.text import indent_length

# Part of every key: changing how keys or values are made must not reuse old entries.
PATTERN_FORMAT = "patterns-1"
KEY_LINES = 3  # non-blank lines before the position that are part of its key
HEADER_LINES = 3  # enclosing headers (class, def, block) that are part of the key
MAX_BLOCK_LINES = 12  # longer blocks are stored as their first line only
_CLOSERS = frozenset(")]}'\"`:;,")


@dataclass(frozen=True)
class _Context:
    headers: tuple[str, ...]  # enclosing header lines, outermost first
    previous: tuple[str, ...]  # the last non-blank lines before the position, oldest first
    blank_before: bool  # a blank line separates the position from them


def _context_before(lines: Sequence[str], index: int) -> _Context | None:
    """What comes before line `index`: its key material, computed from earlier lines only.

    The position's own indentation is not used: at a keystroke it may not be typed yet.
    """
    last = index - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 0:
        return None
    previous: list[str] = []
    k = last
    while k >= 0 and len(previous) < KEY_LINES:
        line = lines[k]
        if line.strip():
            previous.append(line.rstrip())
            if indent_length(line) == 0:
                break  # a top-level line starts its unit: what is above belongs to another
        k -= 1
    headers: list[str] = []
    threshold = indent_length(lines[last])
    k = last - 1
    while k >= 0 and threshold > 0 and len(headers) < HEADER_LINES:
        line = lines[k]
        if line.strip() and indent_length(line) < threshold:
            headers.append(line.rstrip())
            threshold = indent_length(line)
        k -= 1
    return _Context(tuple(reversed(headers)), tuple(reversed(previous)), last < index - 1)


def _key(language: str, context: _Context, abstractor: Abstractor) -> str | None:
    """The pattern key of a context, or None when the entity does not occur in it."""
    headers = [abstractor.abstract(line) for line in context.headers]
    previous = [abstractor.abstract(line) for line in context.previous]
    if not any(has_placeholder_chars(line) for line in (*headers, *previous)):
        return None
    blank = "blank" if context.blank_before else ""
    payload = "\x1f".join([PATTERN_FORMAT, language, blank, *headers, "\x1e", *previous])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PatternSite:
    """A cursor position seen as a place in a pattern."""

    key: str
    entity: Entity
    line_prefix: str  # the cursor's line before the cursor
    line_rest: str  # the cursor's line after the cursor: blank or closing brackets only
    language: str


def _site(lines: Sequence[str], index: int, language: str) -> tuple[str, Entity] | None:
    context = _context_before(lines, index)
    if context is None:
        return None
    entity = find_entity((*context.headers, *context.previous))
    if entity is None:
        return None
    key = _key(language, context, abstractor_for(entity, language))
    return (key, entity) if key else None


def _unit_lines(text: str, end: int, limit: int = 400) -> list[str]:
    """The lines before `end` (a line start) back to the top-level line that starts their unit:
    all that a site's context can depend on, without splitting the whole document."""
    lines: list[str] = []
    stop = end - 1  # the newline that ends the previous line
    while stop >= 0 and len(lines) < limit:
        start = text.rfind("\n", 0, stop) + 1
        line = text[start:stop]
        lines.append(line)
        if line.strip() and indent_length(line) == 0:
            break
        stop = start - 1
    lines.reverse()
    return lines


def site_at(text: str, offset: int, language: str) -> PatternSite | None:
    """The pattern site of a cursor, or None when the code before it names no entity."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line_rest = text[offset : len(text) if line_end == -1 else line_end]
    if line_rest.strip() and not set(line_rest.strip()) <= _CLOSERS:
        return None  # editing inside a line: the pattern cannot know what follows
    lines = _unit_lines(text, line_start)
    if any(has_placeholder_chars(line) for line in lines):
        return None
    found = _site(lines, len(lines), language)
    if found is None:
        return None
    key, entity = found
    return PatternSite(key, entity, text[line_start:offset], line_rest, language)


@dataclass(frozen=True)
class PatternExample:
    """One stored completion: the abstracted line at a site, with the block nested under it."""

    key: str
    lines: tuple[str, ...]
    entity: str  # the entity it was written for ("order_item"): its fields are not the next one's
    # Code the user wrote (a document or a workspace file), not a model's guess: the names it
    # uses besides the entity's exist in the project even when no open document shows them.
    written_by_user: bool = False


def _block(lines: Sequence[str], index: int, stop: int | None) -> list[str]:
    """Line `index` with the lines nested under it (and a closing brace line of its own level).

    When the block runs into `stop` (the line being typed) or is too long, only its first line
    is kept: half a block is not a completion anyone wants.
    """
    base = indent_length(lines[index])
    block = [lines[index].rstrip()]
    j = index + 1
    complete = True
    while j < len(lines):
        line = lines[j]
        if j == stop:
            complete = False
            break
        if line.strip() and indent_length(line) <= base:
            if indent_length(line) == base and line.strip()[0] in ")]}":
                block.append(line.rstrip())
            break
        block.append(line.rstrip())
        j += 1
        if len(block) > MAX_BLOCK_LINES:
            complete = False
            break
    while block and not block[-1].strip():
        block.pop()
    return block if complete else block[:1]


def mine(
    text: str,
    language: str,
    skip_line: int | None = None,
    seen: set[int] | None = None,
    line_range: tuple[int, int] | None = None,
) -> list[PatternExample]:
    """The pattern examples in a document's code.

    `skip_line` is the line being typed (incomplete, so not an example). `seen` holds the
    windows already mined and is updated, so a document mined again yields only what changed.
    `line_range` limits the lines mined (the rest are read as context).
    """
    if has_placeholder_chars(text):
        return []
    return _mine_lines(text.split("\n"), language, skip_line, seen, line_range)


def _mine_lines(
    lines: Sequence[str],
    language: str,
    skip_line: int | None,
    seen: set[int] | None,
    line_range: tuple[int, int] | None,
) -> list[PatternExample]:
    first, last = line_range or (0, len(lines))
    examples = []
    for index in range(max(0, first), min(len(lines), last)):
        line = lines[index]
        if index == skip_line or not line.strip():
            continue
        context = _context_before(lines, index)
        if context is None:
            continue
        block = _block(lines, index, skip_line)
        window = hash((language, context, tuple(block)))
        if seen is not None:
            if window in seen:
                continue
            seen.add(window)
        entity = find_entity((*context.headers, *context.previous))
        if entity is None or starts_other_entity(line, entity):
            continue
        abstractor = abstractor_for(entity, language)
        key = _key(language, context, abstractor)
        if key is not None:
            lines_ = tuple(abstractor.abstract(b) for b in block)
            examples.append(PatternExample(key, lines_, entity.name))
    return examples


def example_from_completion(
    text: str, offset: int, completion: str, language: str
) -> PatternExample | None:
    """What a completion the model wrote at `offset` teaches, or None when it names no pattern."""
    site = site_at(text, offset, language)
    if site is None or site.line_rest.strip() or not completion.strip():
        return None
    if has_placeholder_chars(completion):
        return None
    lines = (site.line_prefix + completion).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > MAX_BLOCK_LINES:
        lines = lines[:1]
    if not lines or starts_other_entity(lines[0], site.entity):
        return None
    abstractor = abstractor_for(site.entity, language)
    abstracted = tuple(abstractor.abstract(line.rstrip()) for line in lines)
    return PatternExample(site.key, abstracted, site.entity.name)


class PatternLearner:
    """Mines the documents it is shown, each changed part once.

    Between two keystrokes only a line or two change: a document is re-mined from the start of
    the top-level unit (class, function) that holds the first changed line to just past the unit
    that holds the last one; the rest keeps what it taught before. Mining costs about 0.1 ms a
    line, so a big document is first mined only around the cursor (or from its start), and no
    edit re-mines more than MAX_UNIT_LINES either side of what changed.
    """

    MAX_SEEN = 50_000  # windows remembered per document before starting over
    FIRST_LINES = 1_500  # lines mined when a document is first seen
    MAX_UNIT_LINES = 400  # lines re-mined either side of a change, however long its unit

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._skip: dict[str, int | None] = {}
        self._seen: dict[str, set[int]] = {}

    def forget(self, uri: str) -> None:
        self._texts.pop(uri, None)
        self._skip.pop(uri, None)
        self._seen.pop(uri, None)

    def observe(
        self, uri: str, text: str, language: str, cursor_line: int | None = None
    ) -> list[PatternExample]:
        old = self._texts.get(uri)
        old_skip = self._skip.get(uri, -1)
        if old == text and old_skip == cursor_line:
            return []  # the other open documents, on almost every keystroke
        self._texts[uri] = text
        self._skip[uri] = cursor_line
        seen = self._seen.setdefault(uri, set())
        if len(seen) > self.MAX_SEEN:
            seen.clear()
            old = None
        if has_placeholder_chars(text):
            return []
        lines = text.split("\n")
        if old is None:
            ranges = [self._first_range(len(lines), cursor_line)]
        else:
            ranges = self._changed_ranges(old, text, lines, old_skip, cursor_line)
        examples = []
        for first, end in ranges:
            unit = self._unit_range(lines, first, end)
            examples += _mine_lines(lines, language, cursor_line, seen, unit)
        return examples

    def _first_range(self, count: int, cursor_line: int | None) -> tuple[int, int]:
        if count <= self.FIRST_LINES:
            return 0, count
        if cursor_line is None:
            return 0, self.FIRST_LINES
        start = max(0, min(cursor_line - self.FIRST_LINES * 3 // 4, count - self.FIRST_LINES))
        return start, start + self.FIRST_LINES

    @staticmethod
    def _changed_ranges(
        old: str, text: str, lines: Sequence[str], old_skip: int | None, cursor_line: int | None
    ) -> list[tuple[int, int]]:
        """The line ranges to mine again: what the edit changed, and the lines the cursor left
        and entered (a line skipped as the one being typed is mined once the cursor leaves)."""
        ranges = []
        if old != text:
            start, same_end = changed_span(old, text)
            first = text.count("\n", 0, start)
            ranges.append((first, text.count("\n", 0, len(text) - same_end) + 1))
        for line in (old_skip, cursor_line):
            if line is not None and 0 <= line < len(lines):
                ranges.append((line, line + 1))
        merged: list[tuple[int, int]] = []
        for first, end in sorted(ranges):
            if merged and first <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((first, end))
        return merged

    def _unit_range(self, lines: Sequence[str], first: int, end: int) -> tuple[int, int]:
        """From the top-level line that starts the unit holding `first`, to past the line after
        the unit holding `end - 1` (the next unit's first line has the previous one as context),
        MAX_UNIT_LINES at most either side."""
        floor = max(0, first - self.MAX_UNIT_LINES)
        start = min(first, len(lines) - 1)
        while start > floor and not (lines[start].strip() and indent_length(lines[start]) == 0):
            start -= 1
        ceiling = min(len(lines), end + self.MAX_UNIT_LINES)
        stop = max(end, start + 1)
        while stop < ceiling and not (lines[stop].strip() and indent_length(lines[stop]) == 0):
            stop += 1
        return start, min(len(lines), stop + 1)
