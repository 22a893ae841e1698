"""The language registry: one entry per language, and every fact the other modules know of it.

A `LanguageSpec` names a language the way the pipeline does ("python", "tsx"), lists the editor
language ids and file extensions that select it, and carries two groups of facts: its tree-sitter
`Grammar` (the grammar package and the node type names the shared syntax code reads) and its
`CodeRules` (what the text-level rules of multi-line detection assume about it). Adding a
language is one entry in `REGISTRY` plus its tests; no other module keeps a table by language.

Python is the reference language; JavaScript, TypeScript, Java, C++, Go and Rust share the same
code through one entry each. A language without an entry gets `GENERIC`'s rules. Every lookup
is a read of a dict built once at import: `language_of` runs on every keystroke.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePath


@dataclass(frozen=True)
class Grammar:
    """What the shared tree-sitter code needs to know about one grammar (node type names)."""

    module: str  # the PyPI grammar package
    attribute: str  # its function returning the language
    functions: frozenset[str]  # functions or methods
    classes: frozenset[str]  # classes, structs, impls, interfaces
    methods: frozenset[str]  # function types that are always methods
    decisions: frozenset[str]  # each adds a path (cyclomatic complexity)
    boolean_ops: frozenset[str]  # operator tokens that add a path: `and`, `&&`...
    throws: frozenset[str]
    boolean_operator: str = "binary_expression"  # the node type whose operator is one of those

    def load(self) -> object:
        return getattr(importlib.import_module(self.module), self.attribute)()


def _grammar(
    module: str,
    attribute: str = "language",
    boolean_operator: str = "binary_expression",
    **types: str,
) -> Grammar:
    """A Grammar from space-separated node type names, to keep the registry readable."""
    sets = {key: frozenset(value.split()) for key, value in types.items()}
    return Grammar(module=module, attribute=attribute, boolean_operator=boolean_operator, **sets)


@dataclass(frozen=True)
class CodeRules:
    """What the text-level rules assume about a language's code."""

    line_comment: str  # starts a comment that runs to the end of the line
    block_openers: tuple[str, ...]  # a line ending with one of these opens a block
    block_keywords: re.Pattern[str] | None = None  # ...and, when set, starts with one of these
    # What a comment line may start with; the line comment alone when left empty.
    comment_lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.comment_lines:
            object.__setattr__(self, "comment_lines", (self.line_comment,))


@dataclass(frozen=True)
class LanguageSpec:
    """One language: how it is recognised, and every fact the modules use about it."""

    name: str  # what language_of returns and every module is handed
    language_ids: tuple[str, ...]  # the editor's (LSP) language ids for it
    extensions: tuple[str, ...]  # file extensions, lower case with the dot
    grammar: Grammar
    code: CodeRules


_PYTHON_CODE = CodeRules(
    line_comment="#",
    block_openers=(":",),
    block_keywords=re.compile(
        r"^(?:async\s+)?(?:def|class|if|elif|else|for|while|try|except|finally|with|match|case)\b"
        r"|^\)"  # the last line of a signature split over several lines: `) -> int:`
    ),
)
_BRACES_CODE = CodeRules(line_comment="//", block_openers=("{",))

# The rules for a language without an entry: any common comment marker, either block opener.
GENERIC = CodeRules(line_comment="//", block_openers=("{", ":"), comment_lines=("#", "//", "--"))

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
_JAVASCRIPT = LanguageSpec(
    name="javascript",
    language_ids=("javascript", "javascriptreact"),
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    grammar=_grammar("tree_sitter_javascript", **_JS_TYPES),
    code=_BRACES_CODE,
)

REGISTRY: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        language_ids=("python",),
        extensions=(".py", ".pyi"),
        grammar=_grammar(
            "tree_sitter_python",
            boolean_operator="boolean_operator",
            functions="function_definition",
            classes="class_definition",
            methods="",
            decisions="if_statement elif_clause for_statement while_statement except_clause "
            "conditional_expression case_clause if_clause for_in_clause",
            boolean_ops="and or",
            throws="raise_statement",
        ),
        code=_PYTHON_CODE,
    ),
    _JAVASCRIPT,
    replace(
        _JAVASCRIPT,
        name="typescript",
        language_ids=("typescript",),
        extensions=(".ts", ".mts", ".cts"),
        grammar=_grammar("tree_sitter_typescript", "language_typescript", **_JS_TYPES),
    ),
    replace(
        _JAVASCRIPT,
        name="tsx",
        language_ids=("typescriptreact",),
        extensions=(".tsx",),
        grammar=_grammar("tree_sitter_typescript", "language_tsx", **_JS_TYPES),
    ),
    LanguageSpec(
        name="java",
        language_ids=("java",),
        extensions=(".java",),
        grammar=_grammar(
            "tree_sitter_java",
            functions="method_declaration constructor_declaration",
            classes="class_declaration interface_declaration enum_declaration record_declaration",
            methods="method_declaration constructor_declaration",
            decisions="if_statement for_statement enhanced_for_statement while_statement "
            "do_statement catch_clause ternary_expression switch_label",
            boolean_ops="&& ||",
            throws="throw_statement",
        ),
        code=_BRACES_CODE,
    ),
    LanguageSpec(
        name="cpp",
        # The C++ grammar reads C well enough for scopes and complexity.
        language_ids=("cpp", "c", "cuda-cpp"),
        extensions=(".cc", ".cpp", ".cxx", ".hpp", ".hh", ".h", ".c"),
        grammar=_grammar(
            "tree_sitter_cpp",
            functions="function_definition",
            classes="class_specifier struct_specifier",
            methods="",
            decisions="if_statement for_statement for_range_loop while_statement do_statement "
            "catch_clause conditional_expression case_statement",
            boolean_ops="&& || and or",
            throws="throw_expression throw_statement",
        ),
        code=_BRACES_CODE,
    ),
    LanguageSpec(
        name="go",
        language_ids=("go",),
        extensions=(".go",),
        grammar=_grammar(
            "tree_sitter_go",
            functions="function_declaration method_declaration",
            classes="type_spec",
            methods="method_declaration",
            decisions="if_statement for_statement expression_case type_case communication_case",
            boolean_ops="&& ||",
            throws="",
        ),
        code=_BRACES_CODE,
    ),
    LanguageSpec(
        name="rust",
        language_ids=("rust",),
        extensions=(".rs",),
        grammar=_grammar(
            "tree_sitter_rust",
            functions="function_item",
            classes="impl_item struct_item enum_item trait_item",
            methods="",
            decisions="if_expression for_expression while_expression match_arm "
            "if_let_expression while_let_expression",
            boolean_ops="&& ||",
            throws="",
        ),
        code=_BRACES_CODE,
    ),
)


def _index(pairs: Iterable[tuple[str, LanguageSpec]], what: str) -> dict[str, LanguageSpec]:
    """A lookup table that refuses a key claimed by two entries."""
    table: dict[str, LanguageSpec] = {}
    for key, spec in pairs:
        if table.setdefault(key, spec) is not spec:
            raise ValueError(f"{what} {key!r} belongs to both {table[key].name} and {spec.name}")
    return table


LANGUAGES: Mapping[str, LanguageSpec] = _index(((s.name, s) for s in REGISTRY), "name")
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(LANGUAGES)
GRAMMARS: Mapping[str, Grammar] = {spec.name: spec.grammar for spec in REGISTRY}
_BY_ID = _index(((i, s) for s in REGISTRY for i in s.language_ids), "language id")
_BY_EXTENSION = _index(((e, s) for s in REGISTRY for e in s.extensions), "extension")
_CODE_RULES: Mapping[str, CodeRules] = {spec.name: spec.code for spec in REGISTRY}


def language_of(language_id: str, path: str) -> str | None:
    """The grammar for a document: from the editor's language id, else from the file extension.

    Returns one of SUPPORTED_LANGUAGES ("tsx" for TypeScript React), or None when no grammar fits.
    """
    spec = _BY_ID.get(language_id.strip().lower()) or _BY_EXTENSION.get(
        PurePath(path).suffix.lower()
    )
    return spec.name if spec is not None else None


def code_rules(language: str) -> CodeRules:
    """The text-level rules for `language` (a registry name): its own, else GENERIC's."""
    return _CODE_RULES.get(language, GENERIC)
