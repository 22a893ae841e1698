"""Whether a re-instantiated pattern completion is one a user could accept as is.

`complete` offers the first stored completion, written out for the cursor's entity, that
continues what is typed on the cursor's line, parses in the document, uses only names that exist
in the document or the other open documents (or that it defines itself), takes no fields from
the source entity's class that the target's class lacks, and does not define again a function or
class its scope already has. The checks are text rules (regular expressions over code with its
strings and comments blanked out); `prompts.parsing.parses` is the only tree-sitter use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from prompts.entities import IDENTIFIER, Entity, instantiate
from prompts.languages import code_rules, empty_block_stub
from prompts.parsing import parses
from prompts.patterns import PatternExample, PatternSite
from prompts.text import indent_length

# Definitions a scope must not receive twice.
_DEFINITION_KEYWORD = r"\b(?:def|class|function|fn|func|struct|interface|enum|trait)\s+"
_DEFINITION = re.compile(_DEFINITION_KEYWORD + r"(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")
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
            idents = IDENTIFIER.findall(part)
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
    used = dict.fromkeys(IDENTIFIER.findall(code))
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
    while (
        indent
        and start >= 0
        and not (lines[start].strip() and indent_length(lines[start]) < indent)
    ):
        start -= 1
    if not indent or start < 0:
        return "\n".join(lines[:row] + lines[row + 1 :])
    header_indent = indent_length(lines[start])
    end = row + 1
    while end < len(lines) and not (
        lines[end].strip() and indent_length(lines[end]) <= header_indent
    ):
        end += 1
    return "\n".join(lines[start:row] + lines[row + 1 : end])


def redefinitions(completion: str, line_prefix: str, text: str, offset: int) -> list[str]:
    """Functions and classes the completion defines that its scope already defines."""
    found = []
    for line in (line_prefix + completion).split("\n"):
        for match in _DEFINITION.finditer(line):
            region = _scope_region(text, offset, indent_length(line))
            name = re.escape(match.group(1))
            if re.search(_DEFINITION_KEYWORD + rf"(?:\([^)]*\)\s*)?{name}\b", region):
                found.append(match.group(1))
    return found


def _parses_in_context(text: str, offset: int, completion: str, language: str) -> bool:
    before, after = text[:offset], text[offset:]
    if parses(before + completion + after, language):
        return True
    # A completed header opens a block whose body is not written yet: give it one to check.
    stub = empty_block_stub((before + completion).rsplit("\n", 1)[-1], language)
    if stub:
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
        if line.strip() and indent_length(line) <= base:
            break
        body.append(line)
    return frozenset(IDENTIFIER.findall(_code_only("\n".join(body), language)))


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
    used = set(IDENTIFIER.findall(_code_only(completion, language)))
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
