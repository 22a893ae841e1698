"""Syntax facts about the code around the cursor, from tree-sitter.

Answers the questions the prompt and the post-processing ask: which language, which
function/method/class holds the cursor, is its body still empty, how branchy is it (cyclomatic
complexity), and should the completion span several lines. `definition_at` describes the
definition under the cursor (parameters, docstring, raised exceptions...) for the "Generate unit
tests" and "Insert docstring" commands.

Offsets are Python string indexes; tree-sitter counts UTF-8 bytes, so every offset crosses
`_Offsets` on its way in and out. Python is the reference language; JavaScript, TypeScript,
Java, C++, Go and Rust share the same code through one table entry each.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import PurePath
from typing import AnyStr

from tree_sitter import Language, Node, Parser, Query, QueryCursor, Tree

# --- plain-text helpers shared by the other prompt modules ---------------------------------


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    """Start and end (before the newline) of the line holding `offset`."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end == -1 else end


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(line: str, tab_size: int = 4) -> int:
    return len(indent_of(line).expandtabs(tab_size))


# --- languages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """What the shared code needs to know about one grammar (node type names)."""

    module: str  # the PyPI grammar package
    attribute: str  # its function returning the language
    functions: frozenset[str]  # functions or methods
    classes: frozenset[str]  # classes, structs, impls, interfaces
    methods: frozenset[str]  # function types that are always methods
    decisions: frozenset[str]  # each adds a path (cyclomatic complexity)
    boolean_ops: frozenset[str]  # operator tokens that add a path: `and`, `&&`...
    throws: frozenset[str]
    line_comment: str = "//"

    def load(self) -> object:
        return getattr(importlib.import_module(self.module), self.attribute)()


def _spec(
    module: str, attribute: str = "language", line_comment: str = "//", **types: str
) -> _Spec:
    """A _Spec from space-separated node type names, to keep the table below readable."""
    sets = {key: frozenset(value.split()) for key, value in types.items()}
    return _Spec(module=module, attribute=attribute, line_comment=line_comment, **sets)


_JS_TYPES = dict(
    functions="function_declaration function_expression function arrow_function "
    "generator_function_declaration generator_function method_definition",
    classes="class_declaration class abstract_class_declaration",
    methods="method_definition",
    decisions="if_statement for_statement for_in_statement while_statement do_statement "
    "catch_clause ternary_expression switch_case",
    boolean_ops="&& || ??",
    throws="throw_statement",
)

_SPECS: dict[str, _Spec] = {
    "python": _spec(
        "tree_sitter_python",
        line_comment="#",
        functions="function_definition",
        classes="class_definition",
        methods="",
        decisions="if_statement elif_clause for_statement while_statement except_clause "
        "conditional_expression case_clause if_clause for_in_clause",
        boolean_ops="and or",
        throws="raise_statement",
    ),
    "javascript": _spec("tree_sitter_javascript", **_JS_TYPES),
    "typescript": _spec("tree_sitter_typescript", "language_typescript", **_JS_TYPES),
    "tsx": _spec("tree_sitter_typescript", "language_tsx", **_JS_TYPES),
    "java": _spec(
        "tree_sitter_java",
        functions="method_declaration constructor_declaration",
        classes="class_declaration interface_declaration enum_declaration record_declaration",
        methods="method_declaration constructor_declaration",
        decisions="if_statement for_statement enhanced_for_statement while_statement "
        "do_statement catch_clause ternary_expression switch_label",
        boolean_ops="&& ||",
        throws="throw_statement",
    ),
    "cpp": _spec(
        "tree_sitter_cpp",
        functions="function_definition",
        classes="class_specifier struct_specifier",
        methods="",
        decisions="if_statement for_statement for_range_loop while_statement do_statement "
        "catch_clause conditional_expression case_statement",
        boolean_ops="&& || and or",
        throws="throw_expression throw_statement",
    ),
    "go": _spec(
        "tree_sitter_go",
        functions="function_declaration method_declaration",
        classes="type_spec",
        methods="method_declaration",
        decisions="if_statement for_statement expression_case type_case communication_case",
        boolean_ops="&& ||",
        throws="",
    ),
    "rust": _spec(
        "tree_sitter_rust",
        functions="function_item",
        classes="impl_item struct_item enum_item trait_item",
        methods="",
        decisions="if_expression for_expression while_expression match_arm "
        "if_let_expression while_let_expression",
        boolean_ops="&& ||",
        throws="",
    ),
}

_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "java": "java",
    "cpp": "cpp",
    "c": "cpp",  # the C++ grammar reads C well enough for scopes and complexity
    "cuda-cpp": "cpp",
    "go": "go",
    "rust": "rust",
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".h": "cpp",
    ".c": "cpp",
    ".go": "go",
    ".rs": "rust",
}

SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(_SPECS)


def language_of(language_id: str, path: str) -> str | None:
    """The grammar for a document: from the editor's language id, else from the file extension.

    Returns one of SUPPORTED_LANGUAGES ("tsx" for TypeScript React), or None when no grammar fits.
    """
    by_id = _LANGUAGE_IDS.get(language_id.strip().lower())
    if by_id:
        return by_id
    return _EXTENSIONS.get(PurePath(path).suffix.lower())


_parse_lock = threading.Lock()
_parsers: dict[str, Parser] = {}
# Recent trees per language: a keystroke changes a few bytes, and tree-sitter reparses an
# edited tree in a fraction of the time a fresh parse of a long file takes.
_recent: dict[str, list[tuple[bytes, Tree]]] = {}
_RECENT_TREES = 4


@cache
def load_grammar(language: str) -> Language:
    """The tree-sitter grammar of a supported language (raises if its wheel is broken)."""
    return Language(_SPECS[language].load())


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
def _parse(language: str, text: str) -> Tree:
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


class _Offsets:
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
    if language not in _SPECS:
        return True
    return not _parse(language, text).root_node.has_error


# --- scopes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeInfo:
    kind: str  # "function" | "method" | "class" | "module"
    name: str | None  # None for the module and anonymous functions
    start_offset: int
    end_offset: int
    body_empty: bool  # nothing but pass / ... / a docstring / comments
    complexity: int  # cyclomatic: 1 + decision points


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _is_scope(node: Node, spec: _Spec) -> bool:
    if not node.is_named:  # the `function` and `class` keywords share their node type names
        return False
    if node.type == "type_spec":  # Go: only struct and interface types are class-like
        type_node = node.child_by_field_name("type")
        return type_node is not None and type_node.type in ("struct_type", "interface_type")
    return node.type in spec.functions or node.type in spec.classes


def _contains(node: Node, byte: int, offsets: _Offsets) -> bool:
    if not node.start_byte < byte <= node.end_byte:
        return False
    # Past a closing brace is outside the block, while the end of a Python block's last
    # statement is still inside it.
    return byte < node.end_byte or offsets.data[node.end_byte - 1 : node.end_byte] != b"}"


def _ancestors(node: Node | None) -> Iterator[Node]:
    while node is not None:
        yield node
        node = node.parent


def _python_anchor(text: str, offset: int) -> int | None:
    """The last character of code above the cursor's line (blank and comment lines skipped)."""
    end, _ = line_bounds(text, offset)
    while end > 0:
        start, _ = line_bounds(text, end - 1)
        line = text[start : end - 1]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return start + len(line.rstrip()) - 1
        end = start
    return None


def _owner(tree: Tree, text: str, offset: int, language: str) -> Node | None:
    """The innermost function, method or class that the cursor is in."""
    spec = _SPECS[language]
    offsets = _Offsets(text)
    byte = offsets.to_byte(offset)
    root = tree.root_node
    best: Node | None = None
    for probe in {byte, max(byte - 1, 0)}:
        for node in _ancestors(root.descendant_for_byte_range(probe, probe)):
            if _is_scope(node, spec) and _contains(node, byte, offsets):
                if best is None or node.start_byte > best.start_byte:
                    best = node
                break
    if language != "python":
        return best
    # tree-sitter ends a Python block at its last statement (an empty body ends at the colon):
    # a cursor on an indented blank line below still belongs to it, by indentation.
    anchor = _python_anchor(text, offset)
    if anchor is None:
        return best
    line_start, _ = line_bounds(text, offset)
    before_cursor = text[line_start:offset]
    column = (
        len(before_cursor.expandtabs(4))
        if not before_cursor.strip()
        else indent_width(before_cursor)
    )
    anchor_byte = offsets.to_byte(anchor)
    for node in _ancestors(root.descendant_for_byte_range(anchor_byte, anchor_byte + 1)):
        if _is_scope(node, spec) and node.end_byte <= byte and node.start_point[1] < column:
            if best is None or node.start_byte > best.start_byte:
                best = node
            break
    return best


def _scope_kind(node: Node, spec: _Spec) -> str:
    if node.type in spec.classes or node.type == "type_spec":
        return "class"
    if node.type in spec.methods:
        return "method"
    if node.type == "function_definition" and node.child_by_field_name("declarator") is not None:
        name = _cpp_name_node(node)
        if name is not None and name.type == "qualified_identifier":  # C++ `void Shape::draw()`
            return "method"
    parent = node.parent
    while parent is not None:
        if parent.type in spec.functions:
            return "function"
        if parent.type in spec.classes:
            return "method"
        parent = parent.parent
    return "function"


def _cpp_name_node(node: Node) -> Node | None:
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type not in (
        "identifier",
        "field_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
    ):
        declarator = declarator.child_by_field_name("declarator")
    return declarator


def _scope_name(node: Node, offsets: _Offsets) -> str | None:
    name = node.child_by_field_name("name")
    if name is not None:
        return offsets.node_text(name)
    if node.type == "impl_item":
        return offsets.node_text(node.child_by_field_name("type")) or None
    cpp = _cpp_name_node(node)
    if cpp is not None:
        return offsets.node_text(cpp)
    # An anonymous JS function takes the name it is bound to: `const f = () => ...`.
    parent = node.parent
    if parent is not None:
        for field in ("name", "left", "key"):
            bound = parent.child_by_field_name(field)
            if bound is not None and bound.id != node.id:
                return offsets.node_text(bound)
    return None


def _body(node: Node) -> Node | None:
    return node.child_by_field_name("body")


def _is_docstring(node: Node) -> bool:
    return (
        node.type == "expression_statement"
        and node.named_child_count == 1
        and node.named_children[0].type in ("string", "concatenated_string")
    )


def _statements(block: Node) -> list[Node]:
    """The statements of a block, looking through Go's statement_list wrapper, minus comments."""
    result: list[Node] = []
    for child in block.named_children:
        if child.type == "statement_list":
            result.extend(_statements(child))
        elif "comment" not in child.type:
            result.append(child)
    return result


def _body_empty(node: Node | None) -> bool:
    if node is None:
        return False
    body = _body(node) if node.type not in ("module", "program") else node
    if body is None:
        return False
    for statement in _statements(body):
        if statement.type == "pass_statement" or _is_docstring(statement):
            continue
        if (
            statement.type == "expression_statement"
            and statement.named_children
            and all(c.type == "ellipsis" for c in statement.named_children)
        ):
            continue
        return False
    return True


def _descend(node: Node, spec: _Spec, into_functions: bool) -> Iterator[Node]:
    """The nodes under `node`, optionally not entering nested functions."""
    stack = list(reversed(node.children))
    while stack:
        current = stack.pop()
        yield current
        if not into_functions and current.type in spec.functions:
            continue
        stack.extend(reversed(current.children))


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
    """Counting in tree-sitter's C code is what keeps a long file fast; walking its nodes in
    Python costs tens of milliseconds."""
    spec = _SPECS[language]
    operator = "boolean_operator" if language == "python" else "binary_expression"
    operators = " ".join(f'"{op}"' for op in sorted(spec.boolean_ops))
    complexity = [
        _alternation(language, spec.decisions, "decision"),
        f"({operator} operator: [{operators}]) @decision",
    ]
    return Query(load_grammar(language), "\n".join(filter(None, complexity)))


def _captures(query: Query, node: Node) -> dict[str, list[Node]]:
    return QueryCursor(query).captures(node)


def _directly_in(node: Node, scope: Node, spec: _Spec) -> bool:
    """Whether `node` belongs to `scope` itself rather than to a function nested in it."""
    parent = node.parent
    while parent is not None and parent.id != scope.id:
        if parent.type in spec.functions and parent.is_named:
            return False
        parent = parent.parent
    return True


def _complexity(node: Node, language: str, into_functions: bool) -> int:
    spec = _SPECS[language]
    decisions = _captures(_complexity_query(language), node).get("decision", [])
    if not into_functions:
        decisions = [d for d in decisions if _directly_in(d, node, spec)]
    return 1 + len(decisions)


def scope_at(text: str, offset: int, language: str) -> ScopeInfo:
    """The function, method or class holding the cursor, or the module when none does."""
    offsets = _Offsets(text)
    if language not in _SPECS:
        return ScopeInfo("module", None, 0, len(text), not text.strip(), 1)
    spec = _SPECS[language]
    tree = _parse(language, text)
    node = _owner(tree, text, offset, language)
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
    kind = _scope_kind(node, spec)
    return ScopeInfo(
        kind=kind,
        name=_scope_name(node, offsets),
        start_offset=offsets.to_char(node.start_byte),
        end_offset=offsets.to_char(node.end_byte),
        body_empty=_body_empty(node),
        complexity=_complexity(node, language, into_functions=kind == "class"),
    )


# --- single line or several -----------------------------------------------------------------

_PY_BLOCK_LINE = re.compile(
    r"^(?:async\s+)?(?:def|class|if|elif|else|for|while|try|except|finally|with|match|case)\b"
    r"|^\)"  # the last line of a signature split over several lines: `) -> int:`
)


def _strip_comment(line: str, comment: str) -> str:
    # Good enough for deciding how a line ends; a comment marker inside a string is rare there.
    index = line.find(comment)
    return (line[:index] if index != -1 else line).rstrip()


def _opens_block(line: str, language: str | None) -> bool:
    if language == "python":
        code = _strip_comment(line, "#").strip()
        return code.endswith(":") and bool(_PY_BLOCK_LINE.match(code))
    spec = _SPECS.get(language or "")
    code = _strip_comment(line, spec.line_comment if spec else "//").strip()
    return code.endswith("{") or (spec is None and code.endswith(":"))


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


def _is_comment_line(line: str, language: str | None) -> bool:
    spec = _SPECS.get(language or "")
    markers = (spec.line_comment,) if spec else ("#", "//", "--")
    return line.strip().startswith(markers)


def wants_multiline(text: str, offset: int, language: str) -> bool:
    """Whether a completion here should be allowed to span several lines.

    Yes at the start of an empty block (after `def f():` or `{`, on its blank first line, or
    inside a function that has only a docstring), and on a blank line under a comment (the
    comment describes the code to write). No in the middle of a line, and everywhere else,
    where one line is what a user expects and what comes back fastest.
    """
    start, end = line_bounds(text, offset)
    before, after = text[start:offset], text[offset:end]
    if after.strip():
        # Only `{|}` counts: the cursor between the braces of an empty block.
        return language != "python" and before.rstrip().endswith("{") and after.lstrip()[:1] == "}"
    below = _neighbour_line(text, offset, 1)
    if before.strip():
        return _opens_block(before, language) and (
            below is None or indent_width(below) <= indent_width(before)
        )
    above = _neighbour_line(text, offset, -1)
    if above is not None and _opens_block(above, language):
        return below is None or indent_width(below) <= indent_width(above)
    if above is not None and _is_comment_line(above, language):
        return below is None or indent_width(below) <= indent_width(before)
    if language in _SPECS:
        scope = scope_at(text, offset, language)
        return scope.kind != "module" and scope.body_empty
    return False


# --- the definition under the cursor ---------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str  # without `*` / `**`
    annotation: str | None
    default: str | None
    # "positional" | "positional_only" | "keyword_only" | "var_positional" | "var_keyword" | "self"
    kind: str = "positional"


@dataclass(frozen=True)
class Definition:
    kind: str  # "function" | "method" | "class"
    name: str
    qualified_name: str  # "Class.method" for methods, the name otherwise
    parameters: tuple[Parameter, ...]  # for a class: those of its constructor, self excluded
    return_annotation: str | None
    docstring: str | None  # its text without quotes or comment markers
    decorators: tuple[str, ...]  # without the `@`
    raises: tuple[str, ...]  # exception names raised or thrown in the body, in order
    is_async: bool
    start_offset: int  # the first decorator, or the definition itself
    end_offset: int
    header_end_offset: int  # just after the `:` or `{` that opens the body
    body_start_offset: int
    body_end_offset: int
    indent: str  # the definition line's indentation
    body_indent: str  # the indentation its body uses (or would use, when empty)
    bases: tuple[str, ...] = ()  # classes: base classes / extended and implemented types
    methods: tuple[str, ...] = ()  # classes: method names, in order
    text: str = ""  # the definition's source, decorators included


def _python_parameters(node: Node | None, offsets: _Offsets, is_method: bool) -> list[Parameter]:
    if node is None:
        return []
    params: list[Parameter] = []
    keyword_only = False
    for child in node.named_children:
        if child.type == "positional_separator":
            params = [
                Parameter(p.name, p.annotation, p.default, "positional_only")
                if p.kind == "positional"
                else p
                for p in params
            ]
            continue
        if child.type == "keyword_separator":
            keyword_only = True
            continue
        kind = "keyword_only" if keyword_only else "positional"
        annotation = offsets.node_text(child.child_by_field_name("type")) or None
        default = offsets.node_text(child.child_by_field_name("value")) or None
        target = child
        if child.type in ("typed_parameter", "list_splat_pattern", "dictionary_splat_pattern"):
            inner = next((c for c in child.named_children if c.type != "type"), child)
            if child.type == "typed_parameter" and inner.type in (
                "list_splat_pattern",
                "dictionary_splat_pattern",
            ):
                child, inner = inner, inner.named_children[0]
            target = inner
            if child.type == "list_splat_pattern":
                kind, keyword_only = "var_positional", True
            elif child.type == "dictionary_splat_pattern":
                kind = "var_keyword"
        elif child.type in ("default_parameter", "typed_default_parameter"):
            target = child.child_by_field_name("name") or child
        name = offsets.node_text(target).lstrip("*")
        if is_method and not params and kind == "positional" and name in ("self", "cls"):
            kind = "self"
        params.append(Parameter(name, annotation, default, kind))
    return params


def _generic_parameters(node: Node | None, offsets: _Offsets) -> list[Parameter]:
    if node is None:
        return []
    params: list[Parameter] = []
    for child in node.named_children:
        if "comment" in child.type:
            continue
        if child.type == "self_parameter":
            params.append(Parameter("self", None, None, "self"))
            continue
        name_node = (
            child.child_by_field_name("pattern")
            or child.child_by_field_name("name")
            or child.child_by_field_name("left")
            or _cpp_name_node(child)
            or child.child_by_field_name("declarator")
        )
        type_node = child.child_by_field_name("type")
        default_node = (
            child.child_by_field_name("value")
            or child.child_by_field_name("right")
            or child.child_by_field_name("default_value")
        )
        name = offsets.node_text(name_node) if name_node is not None else offsets.node_text(child)
        annotation = offsets.node_text(type_node).lstrip(": ").strip() or None
        kind = (
            "var_positional" if child.type in ("rest_pattern", "spread_parameter") else "positional"
        )
        params.append(
            Parameter(name.lstrip("."), annotation, offsets.node_text(default_node) or None, kind)
        )
    return params


def _raised_names(body: Node | None, spec: _Spec, offsets: _Offsets) -> tuple[str, ...]:
    if body is None or not spec.throws:
        return ()
    names: list[str] = []
    for node in _descend(body, spec, into_functions=False):
        if node.type in spec.classes:
            continue
        if node.type not in spec.throws or not node.named_children:
            continue
        thrown = node.named_children[0]
        if thrown.type in ("call", "new_expression", "object_creation_expression"):
            callee = (
                thrown.child_by_field_name("function")
                or thrown.child_by_field_name("constructor")
                or thrown.child_by_field_name("type")
            )
            thrown = callee if callee is not None else thrown
        name = offsets.node_text(thrown)
        if thrown.type in ("identifier", "attribute", "member_expression", "type_identifier") or (
            name.isidentifier()
        ):
            names.append(name)
    return tuple(dict.fromkeys(names))


def _python_docstring(body: Node | None, offsets: _Offsets) -> str | None:
    if body is None:
        return None
    statements = _statements(body)
    if not statements or not _is_docstring(statements[0]):
        return None
    literal = offsets.node_text(statements[0].named_children[0])
    match = re.match(r"(?s)^[rRuUbBfF]*('''|\"\"\"|'|\")(.*)\1$", literal)
    return match.group(2) if match else literal


def _comment_above(node: Node, offsets: _Offsets) -> str | None:
    """The comment block right above a definition, markers removed (JSDoc, ///, //)."""
    lines: list[str] = []
    sibling = node.prev_named_sibling
    expected_row = node.start_point[0]
    while (
        sibling is not None
        and "comment" in sibling.type
        and sibling.end_point[0] >= expected_row - 1
    ):
        lines.insert(0, offsets.node_text(sibling))
        expected_row = sibling.start_point[0]
        sibling = sibling.prev_named_sibling
    if not lines:
        return None
    cleaned = []
    for line in "\n".join(lines).splitlines():
        line = re.sub(r"^\s*(/\*\*?|\*/|\*|///?|//!)", "", line)
        cleaned.append(re.sub(r"\*/\s*$", "", line).strip())
    return "\n".join(cleaned).strip() or None


def _definition_node(tree: Tree, text: str, offset: int, language: str) -> tuple[Node, Node] | None:
    """(definition, outer) where outer also covers decorators; a cursor on a decorator counts."""
    offsets = _Offsets(text)
    byte = offsets.to_byte(offset)
    node = _owner(tree, text, offset, language)
    # An anonymous callback is not something to document or test: take the named scope above.
    while node is not None and not _scope_name(node, offsets):
        node = node.parent
        while node is not None and not _is_scope(node, _SPECS[language]):
            node = node.parent
    if language == "python":
        for candidate in _ancestors(tree.root_node.descendant_for_byte_range(byte, byte)):
            inner = candidate.child_by_field_name("definition")
            if candidate.type == "decorated_definition" and inner is not None:
                if byte < inner.start_byte:  # on a decorator line
                    node = inner
                break
    if node is None:
        return None
    outer = (
        node.parent
        if node.parent is not None and node.parent.type == "decorated_definition"
        else node
    )
    return node, outer


def _header_end(node: Node, body: Node | None) -> int:
    for child in node.children:
        if child.type == ":" or (body is not None and child.id == body.id):
            return child.end_byte if child.type == ":" else child.start_byte + 1
    return body.start_byte + 1 if body is not None else node.end_byte


def _indent_unit(text: str) -> str:
    """The file's indentation step: a tab, or the smallest run of leading spaces (2 to 8)."""
    widths = set()
    for line in text.splitlines():
        indent = indent_of(line)
        if indent.startswith("\t") and line.strip():
            return "\t"
        if len(indent) >= 2 and line.strip():
            widths.add(len(indent))
    return " " * min(min(widths, default=4), 8)


def _body_indent(text: str, def_indent: str, body: Node | None, offsets: _Offsets) -> str:
    """The indentation of the body's first statement, or one step deeper than the definition."""
    statements = _statements(body) if body is not None else []
    if statements:
        start = offsets.to_char(statements[0].start_byte)
        line_start, _ = line_bounds(text, start)
        indent = text[line_start:start]
        if not indent.strip() and len(indent) > len(def_indent):
            return indent
    return def_indent + _indent_unit(text)


def _class_details(
    node: Node, spec: _Spec, offsets: _Offsets, language: str
) -> tuple[tuple[str, ...], tuple[str, ...], list[Parameter]]:
    bases: list[str] = []
    superclasses = node.child_by_field_name("superclasses")
    if superclasses is not None:
        bases = [offsets.node_text(c) for c in superclasses.named_children]
    for child in node.children:
        if child.type in ("class_heritage", "superclass", "super_interfaces", "base_class_clause"):
            bases.extend(
                offsets.node_text(c)
                for c in _walk(child)
                if c.type in ("identifier", "type_identifier", "member_expression")
                and c.parent is not None
                and c.parent.type not in ("member_expression",)
            )
    methods: list[str] = []
    constructor: list[Parameter] = []
    body = _body(node)
    for child in _descend(body, spec, into_functions=False) if body is not None else ():
        if child.type in spec.classes and child.id != node.id:
            continue
        if child.type in spec.functions and _scope_kind(child, spec) == "method":
            parent_scope = child.parent
            while parent_scope is not None and not _is_scope(parent_scope, spec):
                parent_scope = parent_scope.parent
            if parent_scope is None or parent_scope.id != node.id:
                continue
            name = _scope_name(child, offsets) or ""
            methods.append(name)
            if name in ("__init__", "constructor") or child.type == "constructor_declaration":
                params_node = child.child_by_field_name("parameters")
                if language == "python":
                    constructor = _python_parameters(params_node, offsets, is_method=True)
                else:
                    constructor = _generic_parameters(params_node, offsets)
    constructor = [p for p in constructor if p.kind != "self"]
    return tuple(dict.fromkeys(bases)), tuple(methods), constructor


def definition_at(text: str, offset: int, language: str) -> Definition | None:
    """The function, method or class at the cursor, described for generating tests or docs."""
    if language not in _SPECS:
        return None
    spec = _SPECS[language]
    tree = _parse(language, text)
    found = _definition_node(tree, text, offset, language)
    if found is None:
        return None
    node, outer = found
    offsets = _Offsets(text)
    kind = _scope_kind(node, spec)
    name = _scope_name(node, offsets) or ""
    body = _body(node)
    qualified = name
    parent = node.parent
    while parent is not None:
        if parent.type in spec.classes:
            qualified = f"{_scope_name(parent, offsets)}.{qualified}"
            break
        parent = parent.parent
    receiver = node.child_by_field_name("receiver")  # Go: func (s *Stack) Push(...)
    if receiver is not None:
        receiver_type = next((n for n in _walk(receiver) if n.type == "type_identifier"), None)
        qualified = f"{offsets.node_text(receiver_type)}.{name}" if receiver_type else name
    if "::" in name:
        qualified = name.replace("::", ".")
        name = name.rsplit("::", 1)[-1]
    params_node = node.child_by_field_name("parameters")
    bases: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    if kind == "class":
        bases, methods, params = _class_details(node, spec, offsets, language)
    elif language == "python":
        params = _python_parameters(params_node, offsets, is_method=kind == "method")
    else:
        if params_node is None:
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and params_node is None:
                params_node = declarator.child_by_field_name("parameters")
                declarator = declarator.child_by_field_name("declarator")
        params = _generic_parameters(params_node, offsets)
        if node.type == "arrow_function" and params_node is None:
            single = node.child_by_field_name("parameter")
            if single is not None:
                params = [Parameter(offsets.node_text(single), None, None)]
    returns = (
        node.child_by_field_name("return_type")
        or node.child_by_field_name("result")
        or (node.child_by_field_name("type") if kind != "class" else None)
    )
    decorators: tuple[str, ...] = ()
    if outer.type == "decorated_definition":
        decorators = tuple(
            offsets.node_text(d).lstrip("@").strip()
            for d in outer.named_children
            if d.type == "decorator"
        )
    raises = list(_raised_names(body, spec, offsets))
    throws_clause = next((c for c in node.children if c.type == "throws"), None)
    if throws_clause is not None:
        raises.extend(offsets.node_text(c) for c in throws_clause.named_children)
    docstring = (
        _python_docstring(body, offsets) if language == "python" else _comment_above(outer, offsets)
    )
    start = offsets.to_char(outer.start_byte)
    line_start, _ = line_bounds(text, start)
    indent = indent_of(text[line_start:start])
    body_start = (
        offsets.to_char(body.start_byte) if body is not None else offsets.to_char(node.end_byte)
    )
    body_end = offsets.to_char(body.end_byte) if body is not None else body_start
    return Definition(
        kind=kind,
        name=name,
        qualified_name=qualified,
        parameters=tuple(params),
        return_annotation=offsets.node_text(returns).lstrip(":").strip() or None,
        docstring=docstring,
        decorators=decorators,
        raises=tuple(dict.fromkeys(raises)),
        is_async=any(c.type == "async" for c in node.children),
        start_offset=start,
        end_offset=offsets.to_char(outer.end_byte),
        header_end_offset=offsets.to_char(_header_end(node, body)),
        body_start_offset=body_start,
        body_end_offset=body_end,
        indent=indent,
        body_indent=_body_indent(text, indent, body, offsets),
        bases=bases,
        methods=methods,
        text=text[start : offsets.to_char(outer.end_byte)],
    )
