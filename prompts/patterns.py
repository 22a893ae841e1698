"""CRUD patterns: the code at the cursor as an instance of code already written for another entity.

Code written for one entity (`UserRepository.get_user(self, user_id)`) is abstracted by replacing
the entity's name, in all its variants (user, users, User, USER, user_id, UserService, getUser,
/users/...), with placeholders. The abstracted lines before a position form the pattern key; the
abstracted line at that position, with the block nested under it, is the stored completion. In
`OrderRepository` the same key comes back, and the completion is re-instantiated with the new
entity's variants (order, orders, Order, ORDER, order_id...).

A re-instantiated completion is offered only when a user could accept it as is (`complete`):
it continues what is typed on the cursor's line, it parses in the document, every name it uses
exists in the document or the other open documents (or is defined by the completion itself),
and it does not define again a function or class its scope already has.

Pure text: no file system, no model. `prompts.parsing.parses` is the only tree-sitter use.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from prompts.languages import code_rules
from prompts.parsing import changed_span, parses

# Part of every key: changing how keys or values are made must not reuse old entries.
PATTERN_FORMAT = "patterns-1"
KEY_LINES = 3  # non-blank lines before the position that are part of its key
HEADER_LINES = 3  # enclosing headers (class, def, block) that are part of the key
MAX_BLOCK_LINES = 12  # longer blocks are stored as their first line only

STYLES = ("snake", "kebab", "upper", "pascal", "camel")
# One private-use character per (number, style): code never contains them, so a stored
# template cannot be confused with the text around it.
_PLACEHOLDER_BASE = 0xE000
_PLACEHOLDER_COUNT = 2 * len(STYLES)
_PLACEHOLDER_CLASS = f"[{chr(_PLACEHOLDER_BASE)}-{chr(_PLACEHOLDER_BASE + _PLACEHOLDER_COUNT - 1)}]"
_PLACEHOLDER_RE = re.compile(_PLACEHOLDER_CLASS)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_IRREGULAR_PLURALS = {
    "person": "people",
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "datum": "data",
}
_IRREGULAR_SINGULARS = {plural: singular for singular, plural in _IRREGULAR_PLURALS.items()}

# Words that name the role of a class rather than its entity: UserRepository -> user.
_ROLE_WORDS = _word_set(
    """repository repositories repo repos service services handler handlers controller
    controllers api apis resource resources router routes route view views viewset serializer
    serializers schema schemas model models manager managers store stores dao client clients
    factory factories admin form forms dto dtos entity record table adapter provider gateway
    mapper presenter endpoint endpoints crud test tests spec mixin base impl interface request
    response create update in out list detail details page query command event cache"""
)
_PREFIX_WORDS = _word_set("base abstract i test mock fake default generic in memory")
_VERBS = _word_set(
    """get list create update delete remove add find fetch save load insert upsert patch put
    post count search read write build make new set validate serialize deserialize handle
    register edit destroy show index retrieve archive restore"""
)
_CUT_WORDS = _word_set("by for with from in of to and or if on at")
# Names too generic to be an entity even where a CRUD-looking identifier contains them.
_NOT_ENTITIES = _word_set(
    """self cls this id ids key keys name names data dict json str int float bool list all one
    many value values result results args kwargs db session request response obj object objects
    entity entities record records row rows none true false main init new old default config
    settings options params query count total page limit offset filter filters type types
    error errors status path url payload body context ctx handler service repository repo model
    schema item items field fields attr attrs arg node nodes line lines text file files tmp
    str bytes"""
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_TYPE_HEADER = re.compile(r"\b(?:class|struct|interface|trait|impl|enum|type)\s+([A-Za-z_]\w*)")
_FUNC_HEADER = re.compile(r"\b(?:def|function|fn|func)\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")
# Definitions a scope must not receive twice.
_DEFINITION_KEYWORD = r"\b(?:def|class|function|fn|func|struct|interface|enum|trait)\s+"
_DEFINITION = re.compile(_DEFINITION_KEYWORD + r"(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")
_CLOSERS = frozenset(")]}'\"`:;,")


# --- words and entities --------------------------------------------------------------------------


def pluralize(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def singularize(word: str) -> str:
    if word in _IRREGULAR_SINGULARS:
        return _IRREGULAR_SINGULARS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "uses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def split_identifier(name: str) -> list[str]:
    """The lower-case words of an identifier: getUserByID -> [get, user, by, id]."""
    return [word.lower() for word in _WORD.findall(name)]


@dataclass(frozen=True)
class Entity:
    """The thing a piece of CRUD code is about, as lower-case singular words: ("order", "item")."""

    words: tuple[str, ...]

    @property
    def name(self) -> str:
        return "_".join(self.words)

    def surface(self, plural: bool, style: str) -> str:
        """How the entity is written in one variant: (True, "pascal") -> "OrderItems"."""
        words = list(self.words)
        if plural:
            words[-1] = pluralize(words[-1])
        if style == "snake":
            return "_".join(words)
        if style == "kebab":
            return "-".join(words)
        if style == "upper":
            return "_".join(words).upper()
        if style == "pascal":
            return "".join(word.capitalize() for word in words)
        return words[0] + "".join(word.capitalize() for word in words[1:])  # camel


def _entity_words(words: list[str]) -> tuple[str, ...] | None:
    """The entity in the words of a name once its verb, role and qualifiers are gone."""
    while words and words[0] in _PREFIX_WORDS:
        words = words[1:]
    if words and words[0] in _VERBS:
        words = words[1:]
    for index, word in enumerate(words):
        if word in _CUT_WORDS:
            words = words[:index]
            break
    while words and (words[-1] in _ROLE_WORDS or words[-1] in ("id", "ids")):
        words = words[:-1]
    if not 1 <= len(words) <= 3 or any(word.isdigit() or len(word) < 2 for word in words):
        return None
    result = (*words[:-1], singularize(words[-1]))
    if all(word in _NOT_ENTITIES for word in result):
        return None
    return result


def find_entity(lines: Sequence[str]) -> Entity | None:
    """The entity the given lines are about, or None when they name none.

    Class names count most (`class OrderRepository`), then function names made of a CRUD verb
    and a noun (`def list_orders`), then `..._id` names. A tie goes to the later line.
    """
    scores: dict[tuple[str, ...], tuple[int, int]] = {}

    def vote(words: tuple[str, ...] | None, weight: int, position: int) -> None:
        if words:
            score, _ = scores.get(words, (0, 0))
            scores[words] = (score + weight, position)

    for position, line in enumerate(lines):
        for match in _TYPE_HEADER.finditer(line):
            vote(_entity_words(split_identifier(match.group(1))), 4, position)
        for match in _FUNC_HEADER.finditer(line):
            vote(_entity_words(split_identifier(match.group(1))), 3, position)
        for name in _IDENT.findall(line):
            words = split_identifier(name)
            if len(words) >= 2 and words[0] in _VERBS:
                vote(_entity_words(words), 1, position)
            elif len(words) >= 2 and words[-1] in ("id", "ids"):
                vote(_entity_words(words[:-1]), 1, position)
    if not scores:
        return None
    best = max(scores.items(), key=lambda item: item[1])
    return Entity(best[0])


# --- abstraction and instantiation ---------------------------------------------------------------


def _placeholder(plural: bool, style: str) -> str:
    return chr(_PLACEHOLDER_BASE + int(plural) * len(STYLES) + STYLES.index(style))


def _decode_placeholder(char: str) -> tuple[bool, str]:
    index = ord(char) - _PLACEHOLDER_BASE
    return index >= len(STYLES), STYLES[index % len(STYLES)]


def has_placeholder_chars(text: str) -> bool:
    """True for text that already holds the characters templates use (it cannot be abstracted)."""
    return _PLACEHOLDER_RE.search(text) is not None


class _Abstractor:
    """Finds one entity's variants in text, at identifier-word boundaries."""

    def __init__(self, entity: Entity, language: str) -> None:
        self.entity = entity
        self.lower_style = code_rules(language).naming
        self.variants: dict[str, tuple[bool, frozenset[str]]] = {}
        for plural in (False, True):
            for style in STYLES:
                surface = entity.surface(plural, style)
                if surface in self.variants:
                    if self.variants[surface][0] == plural:
                        styles = self.variants[surface][1] | {style}
                        self.variants[surface] = (plural, styles)
                    continue  # a plural equal to its singular (data) reads as the singular
                self.variants[surface] = (plural, frozenset({style}))
        alternatives = []
        for surface in sorted(self.variants, key=len, reverse=True):
            # `user` must not match inside `username` or `superuser`; `User` may start a
            # camel-case word (getUser) but not continue an upper-case run (HTTPUser).
            left = r"(?<![A-Za-z0-9])" if surface[0].islower() else r"(?<![A-Z0-9])"
            right = r"(?![a-z0-9])" if surface[-1].islower() else r"(?![A-Z0-9])"
            alternatives.append(f"{left}{re.escape(surface)}{right}")
        self.regex = re.compile("|".join(alternatives))

    def _style(self, styles: frozenset[str], text: str, start: int, end: int) -> str:
        if len(styles) == 1:
            return next(iter(styles))
        after = text[end : end + 1]
        before = text[start - 1 : start] if start else ""
        if "camel" in styles and after.isupper():
            return "camel"  # userId
        if "kebab" in styles and ("-" in (before, after) or "/" in (before, after)):
            return "kebab"  # /users/ in a route
        return self.lower_style if self.lower_style in styles else "snake"

    def abstract(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            plural, styles = self.variants[match.group(0)]
            return _placeholder(plural, self._style(styles, text, match.start(), match.end()))

        return self.regex.sub(replace, text)

    def mentions(self, text: str) -> bool:
        return self.regex.search(text) is not None


@lru_cache(maxsize=512)
def _abstractor(entity: Entity, language: str) -> _Abstractor:
    """Built once per entity: mining meets the same few entities on every keystroke."""
    return _Abstractor(entity, language)


def abstract(text: str, entity: Entity, language: str) -> str:
    """`text` with every variant of `entity` replaced by its placeholder."""
    return _abstractor(entity, language).abstract(text)


def instantiate(template: str, entity: Entity) -> str:
    """A template with its placeholders written out for `entity`."""
    return _PLACEHOLDER_RE.sub(lambda m: entity.surface(*_decode_placeholder(m.group(0))), template)


# --- positions in a document ---------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


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
            if _indent(line) == 0:
                break  # a top-level line starts its unit: what is above belongs to another
        k -= 1
    headers: list[str] = []
    threshold = _indent(lines[last])
    k = last - 1
    while k >= 0 and threshold > 0 and len(headers) < HEADER_LINES:
        line = lines[k]
        if line.strip() and _indent(line) < threshold:
            headers.append(line.rstrip())
            threshold = _indent(line)
        k -= 1
    return _Context(tuple(reversed(headers)), tuple(reversed(previous)), last < index - 1)


def _key(language: str, context: _Context, abstractor: _Abstractor) -> str | None:
    """The pattern key of a context, or None when the entity does not occur in it."""
    headers = [abstractor.abstract(line) for line in context.headers]
    previous = [abstractor.abstract(line) for line in context.previous]
    if not any(_PLACEHOLDER_RE.search(line) for line in (*headers, *previous)):
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
    key = _key(language, context, _abstractor(entity, language))
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
        if line.strip() and _indent(line) == 0:
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


# --- learning ------------------------------------------------------------------------------------


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
    base = _indent(lines[index])
    block = [lines[index].rstrip()]
    j = index + 1
    complete = True
    while j < len(lines):
        line = lines[j]
        if j == stop:
            complete = False
            break
        if line.strip() and _indent(line) <= base:
            if _indent(line) == base and line.strip()[0] in ")]}":
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


def _starts_other_entity(line: str, entity: Entity) -> bool:
    """A class or function header for a different entity begins new code, not an instance."""
    for regex in (_TYPE_HEADER, _FUNC_HEADER):
        for match in regex.finditer(line):
            words = _entity_words(split_identifier(match.group(1)))
            if words and words != entity.words:
                return True
    return False


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
        if entity is None or _starts_other_entity(line, entity):
            continue
        abstractor = _abstractor(entity, language)
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
    if not lines or _starts_other_entity(lines[0], site.entity):
        return None
    abstractor = _abstractor(site.entity, language)
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
        while start > floor and not (lines[start].strip() and _indent(lines[start]) == 0):
            start -= 1
        ceiling = min(len(lines), end + self.MAX_UNIT_LINES)
        stop = max(end, start + 1)
        while stop < ceiling and not (lines[stop].strip() and _indent(lines[stop]) == 0):
            stop += 1
        return start, min(len(lines), stop + 1)


# --- accepting a re-instantiated completion ------------------------------------------------------

_STRINGS = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|`(?:\\.|[^`\\])*`'
)
_NOT_A_METHOD = r"(?!(?:if|for|while|switch|catch|return|with|elif)\b)"
_DEFINED_PATTERNS = (
    re.compile(
        r"\b(?:def|class|function|fn|func|struct|interface|enum|trait|type|const|let|var|val)"
        r"\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"
    ),
    re.compile(r"(?:^|[\s,(])(?:self\.|this\.)?([A-Za-z_]\w*)\s*(?::[^=\n]+)?(?<![<>!=])=(?!=)"),
    re.compile(r"\bfor\s+\(?\s*(?:const\s+|let\s+|var\s+)?([A-Za-z_]\w*)"),
    re.compile(r"\bas\s+([A-Za-z_]\w*)"),
    re.compile(r"([A-Za-z_]\w*)\s*=>"),
    re.compile(
        r"^\s*(?:(?:async|static|public|private|protected)\s+)*"
        + _NOT_A_METHOD
        + r"([A-Za-z_]\w*)\s*\([^)]*\)\s*(?::\s*[^{]+)?\{",
        re.M,
    ),
)
_PARAMETER_LISTS = re.compile(
    r"\b(?:def|function|fn|func)\s*(?:\([^)]*\)\s*)?\w*\s*\(([^)]*)\)"
    r"|\(([^)]*)\)\s*=>"
    r"|\blambda\b([^:]*):"
    r"|^\s*(?:(?:async|static|public|private|protected)\s+)*"
    + _NOT_A_METHOD
    + r"[A-Za-z_]\w*\s*\(([^)]*)\)\s*\{",
    re.M,
)


def _code_only(text: str, language: str) -> str:
    text = _STRINGS.sub('""', text)
    return code_rules(language).comment_pattern.sub("", text)


def _defined_names(code: str, language: str) -> set[str]:
    name_last = code_rules(language).parameter_name_last
    names: set[str] = set()
    for regex in _DEFINED_PATTERNS:
        names.update(match.group(1) for match in regex.finditer(code))
    for match in _PARAMETER_LISTS.finditer(code):
        params = next(group for group in match.groups() if group is not None)
        for part in params.split(","):
            part = part.split("=", 1)[0]
            if not name_last:
                part = part.split(":", 1)[0]
            idents = _IDENT.findall(part)
            if idents:
                names.add(idents[-1] if name_last else idents[0])
    return names


def _name_in(name: str, texts: Iterable[str]) -> bool:
    regex: re.Pattern[str] | None = None
    for text in texts:
        if name in text:
            regex = regex or re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
            if regex.search(text):
                return True
    return False


def unknown_names(completion: str, language: str, context_texts: Sequence[str]) -> list[str]:
    """Names the completion uses that neither the context nor the completion itself defines."""
    code = _code_only(completion, language)
    known = code_rules(language).known_names
    defined = _defined_names(code, language)
    used = dict.fromkeys(_IDENT.findall(code))
    return [
        name
        for name in used
        if name not in known and name not in defined and not _name_in(name, context_texts)
    ]


def _scope_region(text: str, offset: int, indent: int) -> str:
    """The block of the document that a line indented by `indent` at `offset` belongs to,
    without the cursor's own line (what is typed there is what the completion finishes)."""
    lines = text.split("\n")
    row = text.count("\n", 0, offset)
    start = row - 1
    while indent and start >= 0 and not (lines[start].strip() and _indent(lines[start]) < indent):
        start -= 1
    if not indent or start < 0:
        return "\n".join(lines[:row] + lines[row + 1 :])
    header_indent = _indent(lines[start])
    end = row + 1
    while end < len(lines) and not (lines[end].strip() and _indent(lines[end]) <= header_indent):
        end += 1
    return "\n".join(lines[start:row] + lines[row + 1 : end])


def redefinitions(completion: str, line_prefix: str, text: str, offset: int) -> list[str]:
    """Functions and classes the completion defines that its scope already defines."""
    found = []
    for line in (line_prefix + completion).split("\n"):
        for match in _DEFINITION.finditer(line):
            region = _scope_region(text, offset, _indent(line))
            name = re.escape(match.group(1))
            if re.search(_DEFINITION_KEYWORD + rf"(?:\([^)]*\)\s*)?{name}\b", region):
                found.append(match.group(1))
    return found


def _parses_in_context(text: str, offset: int, completion: str, language: str) -> bool:
    before, after = text[:offset], text[offset:]
    if parses(before + completion + after, language):
        return True
    # A completed header opens a block whose body is not written yet: give it one to check.
    last = (before + completion).rsplit("\n", 1)[-1]
    rules = code_rules(language)
    if rules.empty_block_body and last.rstrip().endswith(rules.block_openers):
        stub = "\n" + " " * (_indent(last) + 4) + rules.empty_block_body
        return parses(before + completion + stub + after, language)
    opened = completion.count("{") - completion.count("}")
    if opened > 0:
        return parses(before + completion + "\n}" * opened + after, language)
    return False


def _class_body_names(entity: Entity, texts: Sequence[str], language: str) -> set[str] | None:
    """The names used in the body of the entity's own class (`class Order:` ...), if in view."""
    for text in texts:
        names = _class_body_names_in(entity.surface(False, "pascal"), text, language)
        if names is not None:
            return set(names)
    return None


@lru_cache(maxsize=256)
def _class_body_names_in(name: str, text: str, language: str) -> frozenset[str] | None:
    # Open documents other than the one being typed do not change between keystrokes.
    if name not in text:
        return None
    header = re.compile(
        rf"^([ \t]*)(?:export\s+)?(?:(?:public|abstract|final|data|pub)\s+)*"
        rf"(?:class|struct|interface|type|record)\s+{re.escape(name)}\b.*$",
        re.M,
    )
    match = header.search(text)
    if match is None:
        return None
    base = len(match.group(1))
    body = []
    for line in text[match.end() + 1 :].split("\n"):
        if line.strip() and _indent(line) <= base:
            break
        body.append(line)
    return frozenset(_IDENT.findall(_code_only("\n".join(body), language)))


def foreign_fields(
    completion: str, source: Entity, target: Entity, texts: Sequence[str], language: str
) -> list[str]:
    """Names the completion takes from the source entity's class that the target's class lacks.

    `create_user(self, name, email)` is no template for `create_order` when `class Order` has
    `customer_id` and `total`: the fields belong to the entity, not to the pattern.
    """
    if source == target:
        return []
    source_names = _class_body_names(source, texts, language)
    target_names = _class_body_names(target, texts, language)
    if source_names is None or target_names is None:
        return []
    used = set(_IDENT.findall(_code_only(completion, language)))
    return sorted(used & (source_names - target_names))


def complete(
    site: PatternSite,
    candidates: Sequence[PatternExample],
    *,
    text: str,
    offset: int,
    multiline: bool,
    other_texts: Sequence[str] = (),
) -> str | None:
    """The first candidate, re-instantiated for the site's entity, that a user could accept.

    Returns the text to insert at the cursor, or None when no candidate passes every check.
    """
    texts = (text, *other_texts)
    for candidate in candidates:
        lines = [instantiate(line, site.entity) for line in candidate.lines]
        completion = _fit(site, lines, multiline)
        if completion is None:
            continue
        if redefinitions(completion, site.line_prefix, text, offset):
            continue
        # Names are checked on the whole line: a name may start in what is typed already.
        whole = site.line_prefix + completion
        known = (*texts, *candidate.lines) if candidate.written_by_user else texts
        if unknown_names(whole, site.language, known):
            continue
        source = Entity(tuple(candidate.entity.split("_"))) if candidate.entity else site.entity
        if foreign_fields(whole, source, site.entity, texts, site.language):
            continue
        if not _parses_in_context(text, offset, completion, site.language):
            continue
        return completion
    return None


def _fit(site: PatternSite, lines: list[str], multiline: bool) -> str | None:
    """The part of an instantiated block still to type at the site, or None if it does not fit."""
    if not lines or not lines[0].startswith(site.line_prefix):
        return None
    first = lines[0][len(site.line_prefix) :]
    closers = site.line_rest.strip()
    if closers:
        # The editor closed a bracket already: the line must end with it, and it is not repeated.
        if not first.rstrip().endswith(closers):
            return None
        completion = first.rstrip()[: len(first.rstrip()) - len(closers)]
    elif multiline and len(lines) > 1:
        completion = "\n".join([first, *lines[1:]])
    else:
        completion = first
    return completion if completion.strip() else None
