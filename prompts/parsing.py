"""Parsing with tree-sitter: grammars, a parse cache that re-parses edits incrementally, offsets.

A keystroke changes a few bytes of a long text: the parser keeps the last trees of each language
and hands tree-sitter the one closest to the new text, edited to match it, which reparses in a
fraction of the time a fresh parse takes. One request asks several questions of the same text
(scope, multi-line, definition); a small cache of trees by text answers all but the first.

Offsets are Python string indexes; tree-sitter counts UTF-8 bytes, so every offset crosses
`Offsets` on its way in and out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache, lru_cache
from typing import AnyStr

from tree_sitter import Language, Node, Parser, Tree

from prompts.languages import GRAMMARS

_parse_lock = threading.Lock()
_parsers: dict[str, Parser] = {}
# Recent trees per language: a keystroke changes a few bytes, and tree-sitter reparses an
# edited tree in a fraction of the time a fresh parse of a long file takes.
_recent: dict[str, list[tuple[bytes, Tree]]] = {}
_RECENT_TREES = 4


@cache
def load_grammar(language: str) -> Language:
    """The tree-sitter grammar of a supported language (raises if its wheel is broken)."""
    return Language(GRAMMARS[language].load())


_CHUNK = 4096


def _shared_length(same: Callable[[int], bool], limit: int) -> int:
    """The largest n <= limit with same(n), for a predicate true up to some n and false after:
    whole chunks first, then bisection inside the chunk that differs."""
    lo = 0
    while lo + _CHUNK <= limit and same(lo + _CHUNK):
        lo += _CHUNK
    hi = min(lo + _CHUNK, limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if same(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_prefix(a: AnyStr, b: AnyStr) -> int:
    """How many characters (or bytes) `a` and `b` share at their starts."""

    def same(n: int) -> bool:  # the n first items agree (the ones before the chunk already do)
        start = max(0, n - _CHUNK)
        return a[start:n] == b[start:n]

    return _shared_length(same, min(len(a), len(b)))


def _common_suffix(a: AnyStr, b: AnyStr, limit: int) -> int:
    """How many characters (or bytes) `a` and `b` share at their ends, `limit` at most."""

    def same(n: int) -> bool:
        keep = max(0, n - _CHUNK)
        return a[len(a) - n : len(a) - keep] == b[len(b) - n : len(b) - keep]

    return _shared_length(same, limit)


def changed_span(old: AnyStr, new: AnyStr) -> tuple[int, int]:
    """(shared start, shared end) of two versions of a text: what an edit left alone on each
    side; the two never overlap."""
    start = _common_prefix(old, new)
    return start, _common_suffix(old, new, min(len(old), len(new)) - start)


def _point(data: bytes, byte: int) -> tuple[int, int]:
    return data.count(b"\n", 0, byte), byte - (data.rfind(b"\n", 0, byte) + 1)


def _edited_tree(old: bytes, tree: Tree, new: bytes) -> tuple[Tree, int] | None:
    """A copy of `tree` edited to match `new`, with how many bytes the two texts share."""
    start, same_end = changed_span(old, new)
    shared = start + same_end
    if shared < len(new) // 2:
        return None
    edited = tree.copy()
    old_end, new_end = len(old) - same_end, len(new) - same_end
    edited.edit(
        start_byte=start,
        old_end_byte=old_end,
        new_end_byte=new_end,
        start_point=_point(old, start),
        old_end_point=_point(old, old_end),
        new_end_point=_point(new, new_end),
    )
    return edited, shared


@lru_cache(maxsize=16)
def parse_tree(language: str, text: str) -> Tree:
    """The syntax tree of `text` in a supported language."""
    # One request asks several questions of the same text; the cache answers all but the first.
    data = text.encode("utf-8")
    with _parse_lock:
        parser = _parsers.get(language)
        if parser is None:
            parser = _parsers[language] = Parser(load_grammar(language))
        recent = _recent.setdefault(language, [])
        best: tuple[Tree, int] | None = None
        for old, old_tree in recent:
            edited = _edited_tree(old, old_tree, data)
            if edited is not None and (best is None or edited[1] > best[1]):
                best = edited
                if best[1] >= len(data) - _CHUNK:  # a keystroke's edit: no need to look further
                    break
        tree = parser.parse(data, best[0]) if best is not None else parser.parse(data)
        recent.insert(0, (data, tree))
        del recent[_RECENT_TREES:]
        return tree


class Offsets:
    """Converts between str indexes and UTF-8 byte offsets for one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.ascii = len(self.data) == len(text)

    def to_byte(self, offset: int) -> int:
        return offset if self.ascii else len(self.text[:offset].encode("utf-8"))

    def to_char(self, byte: int) -> int:
        return byte if self.ascii else len(self.data[:byte].decode("utf-8", errors="ignore"))

    def node_text(self, node: Node | None) -> str:
        if node is None:
            return ""
        return self.data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def parses(text: str, language: str) -> bool:
    """True when the text has no syntax errors (no ERROR or MISSING nodes)."""
    if language not in GRAMMARS:
        return True
    return not parse_tree(language, text).root_node.has_error
