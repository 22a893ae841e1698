"""The scope at the cursor: which function, method or class holds it, and how branchy it is.

`scope_at` runs on every keystroke: the multi-line decision asks whether the scope's body is
still empty, and model routing reads its cyclomatic complexity (1 + decision points). The
decision points are counted by a tree-sitter query, in C: walking a long file's nodes in Python
costs tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from tree_sitter import Node, Query, QueryCursor

from prompts.languages import GRAMMARS, Grammar
from prompts.nodes import (
    block_statements,
    body_of,
    enclosing_scope,
    is_docstring,
    scope_kind,
    scope_name,
)
from prompts.parsing import Offsets, load_grammar, parse_tree


@dataclass(frozen=True)
class ScopeInfo:
    kind: str  # "function" | "method" | "class" | "module"
    name: str | None  # None for the module and anonymous functions
    start_offset: int
    end_offset: int
    body_empty: bool  # nothing but pass / ... / a docstring / comments
    complexity: int  # cyclomatic: 1 + decision points


def _body_empty(node: Node | None) -> bool:
    if node is None:
        return False
    body = body_of(node) if node.type not in ("module", "program") else node
    if body is None:
        return False
    for statement in block_statements(body):
        if statement.type == "pass_statement" or is_docstring(statement):
            continue
        if (
            statement.type == "expression_statement"
            and statement.named_children
            and all(c.type == "ellipsis" for c in statement.named_children)
        ):
            continue
        return False
    return True


def _compiles(language: str, pattern: str) -> bool:
    try:
        Query(load_grammar(language), pattern)
    except Exception:  # tree-sitter raises its own error types for unknown node names
        return False
    return True


def _alternation(language: str, types: Iterable[str], capture: str) -> str:
    """`[(a) (b)] @capture` over the node types this grammar version has."""
    known = [t for t in sorted(types) if _compiles(language, f"({t}) @x")]
    return f"[{' '.join(f'({t})' for t in known)}] @{capture}" if known else ""


@cache
def _complexity_query(language: str) -> Query:
    """The query capturing every decision point of a grammar, built once per language."""
    grammar = GRAMMARS[language]
    operators = " ".join(f'"{op}"' for op in sorted(grammar.boolean_ops))
    complexity = [
        _alternation(language, grammar.decisions, "decision"),
        f"({grammar.boolean_operator} operator: [{operators}]) @decision",
    ]
    return Query(load_grammar(language), "\n".join(filter(None, complexity)))


def _captures(query: Query, node: Node) -> dict[str, list[Node]]:
    return QueryCursor(query).captures(node)


def _directly_in(node: Node, scope: Node, grammar: Grammar) -> bool:
    """Whether `node` belongs to `scope` itself rather than to a function nested in it."""
    parent = node.parent
    while parent is not None and parent.id != scope.id:
        if parent.type in grammar.functions and parent.is_named:
            return False
        parent = parent.parent
    return True


def _complexity(node: Node, language: str, into_functions: bool) -> int:
    grammar = GRAMMARS[language]
    decisions = _captures(_complexity_query(language), node).get("decision", [])
    if not into_functions:
        decisions = [d for d in decisions if _directly_in(d, node, grammar)]
    return 1 + len(decisions)


def scope_at(text: str, offset: int, language: str) -> ScopeInfo:
    """The function, method or class holding the cursor, or the module when none does."""
    offsets = Offsets(text)
    if language not in GRAMMARS:
        return ScopeInfo("module", None, 0, len(text), not text.strip(), 1)
    grammar = GRAMMARS[language]
    tree = parse_tree(language, text)
    node = enclosing_scope(tree, text, offset, language)
    if node is None:
        root = tree.root_node
        return ScopeInfo(
            kind="module",
            name=None,
            start_offset=0,
            end_offset=len(text),
            body_empty=_body_empty(root),
            complexity=_complexity(root, language, into_functions=True),
        )
    kind = scope_kind(node, grammar)
    return ScopeInfo(
        kind=kind,
        name=scope_name(node, offsets),
        start_offset=offsets.to_char(node.start_byte),
        end_offset=offsets.to_char(node.end_byte),
        body_empty=_body_empty(node),
        complexity=_complexity(node, language, into_functions=kind == "class"),
    )
