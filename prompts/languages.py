"""The language registry: one entry per language, and every fact the other modules know of it.

A `LanguageSpec` names a language the way the pipeline does ("python", "tsx") and lists the
editor language ids and file extensions that select it, how the prompt's header is written as a
comment, how an import line starts, and which languages' documents serve as its related
snippets. A language with a tree-sitter grammar also carries its `Grammar` (the grammar package
and the node type names the shared syntax code reads) and its `CodeRules` (what multi-line
detection, post-processing and CRUD patterns assume about its code). Adding a language is one
entry in `REGISTRY` plus its tests; no other module keeps a table by language.

Python is the reference language; JavaScript, TypeScript, Java, C++, Go and Rust share the same
code through one entry each. Languages without a grammar (and languages without an entry) get
`GENERIC`'s code rules. Every lookup is a read of a dict built once at import: `language_of`
and `code_rules` run on every keystroke.
"""

from __future__ import annotations

import builtins
import importlib
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Literal


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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Keywords and built-ins a completion may use without the document defining them.
PYTHON_NAMES = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | {"self", "cls"}
)
# One set for every other language: a name from one of them is rarely a typo in another.
C_FAMILY_NAMES = _words(
    """if else for while do return break continue switch case default try catch finally throw
    throws new delete this super class interface enum struct extends implements import export
    from as const let var function async await yield typeof instanceof in of void null undefined
    true false public private protected static final abstract readonly type namespace package
    func go defer chan map range select fallthrough nil fn impl trait pub mut use mod crate self
    Self match loop where dyn ref move unsafe int long short char float double bool boolean byte
    string String Object Array Map Set Promise JSON Math Number Error console window document
    parseInt parseFloat isNaN Date RegExp Symbol make len cap append copy panic recover print
    println error Ok Err Some None Vec Box Option Result auto unsigned signed sizeof std
    template typename virtual override nullptr include define constructor get set keyof infer
    never unknown any number object"""
)


@dataclass(frozen=True)
class CodeRules:
    """What the text-level rules (multi-line, post-processing, patterns) assume about code."""

    line_comment: str  # starts a comment that runs to the end of the line
    block_openers: tuple[str, ...]  # a line ending with one of these opens a block
    block_keywords: re.Pattern[str] | None = None  # ...and, when set, starts with one of these
    # What a comment line may start with; the line comment alone when left empty.
    comment_line_starts: tuple[str, ...] = ()
    block_comment: tuple[str, str] | None = ("/*", "*/")
    empty_block_body: str = ""  # a statement that fills an empty block (Python's `pass`)
    # Where a multi-line completion stops at the latest: the next top-level definition.
    multiline_stops: tuple[str, ...] = ()
    known_names: frozenset[str] = C_FAMILY_NAMES
    # How a lone lower-case entity (`user`) is written once the entity has several words.
    naming: Literal["snake", "camel"] = "snake"
    parameter_name_last: bool = False  # `int count` (Java, C++) rather than `count: int`
    lifetimes: bool = False  # `'a` may be a lifetime or a label, not a character literal (Rust)
    # Quotes whose literals end on their own line: one left open there is an error.
    single_line_quotes: str = "'\""
    # Line and block comments, to blank them out of code: made from line_comment and
    # block_comment.
    comment_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.comment_line_starts:
            object.__setattr__(self, "comment_line_starts", (self.line_comment,))
        pattern = re.escape(self.line_comment) + r"[^\n]*"
        if self.block_comment is not None:
            start, end = self.block_comment
            pattern += "|" + re.escape(start) + r"[\s\S]*?" + re.escape(end)
        object.__setattr__(self, "comment_pattern", re.compile(pattern))


# How a line of prose becomes a comment in a header: (start, end).
_HASH = ("# ", "")
_SLASH = ("// ", "")
_DASH = ("-- ", "")
FALLBACK_COMMENT = _HASH  # for a language the registry lacks


@dataclass(frozen=True)
class LanguageSpec:
    """One language: how it is recognised, and every fact the modules use about it.

    An entry without a grammar (Ruby, SQL, Markdown...) still gives the prompt its header's
    comment syntax and its import lines; its code gets GENERIC's rules, like any language the
    registry lacks.
    """

    name: str  # what language_of returns and every module is handed
    language_ids: tuple[str, ...]  # the editor's (LSP) language ids for it
    comment: tuple[str, str]  # how a line of prose is written as a comment: (start, end)
    imports: re.Pattern[str] | None = None  # how a line that starts an import statement begins
    family: str = ""  # documents of one family are related snippets for each other; name if ""
    extensions: tuple[str, ...] = ()  # file extensions (lower case, with the dot): grammars only
    grammar: Grammar | None = None
    code: CodeRules | None = None  # set exactly when the grammar is

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", self.name)
        if (self.grammar is None) != (self.code is None):
            raise ValueError(f"{self.name}: a grammar and code rules come together")
        if self.extensions and self.grammar is None:
            raise ValueError(f"{self.name}: extensions select a grammar, and it has none")


_C_INCLUDE = re.compile(r"^#\s*(?:include|import)\s")
_IMPORT_KEYWORD = re.compile(r"^import\s")

_PYTHON_CODE = CodeRules(
    line_comment="#",
    block_openers=(":",),
    block_keywords=re.compile(
        r"^(?:async\s+)?(?:def|class|if|elif|else|for|while|try|except|finally|with|match|case)\b"
        r"|^\)"  # the last line of a signature split over several lines: `) -> int:`
    ),
    block_comment=None,
    empty_block_body="pass",
    multiline_stops=("\ndef ", "\nclass ", "\nasync def ", "\n@", "\nif __name__"),
    known_names=PYTHON_NAMES,
)
_BRACES_CODE = CodeRules(line_comment="//", block_openers=("{",))
_JS_CODE = replace(
    _BRACES_CODE, naming="camel", multiline_stops=("\nfunction ", "\nexport ", "\nclass ")
)
_TS_CODE = replace(_JS_CODE, multiline_stops=(*_JS_CODE.multiline_stops, "\ninterface "))

# The rules for code in a language without a grammar: any common comment marker starts a
# comment line, either `{` or `:` opens a block, and the bracket scanner skips `//` comments.
GENERIC = CodeRules(
    line_comment="//", block_openers=("{", ":"), comment_line_starts=("#", "//", "--")
)

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
    comment=_SLASH,
    family="javascript",  # TypeScript's entries below are copies of this one
    imports=re.compile(
        r"^(?:import[\s{*'\"]|export\s.*\sfrom\s|(?:const|let|var)\s.*=\s*require\()"
    ),
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    grammar=_grammar("tree_sitter_javascript", **_JS_TYPES),
    code=_JS_CODE,
)


def _text_only(
    names: str, comment: tuple[str, str], imports: re.Pattern[str] | None = None
) -> tuple[LanguageSpec, ...]:
    """One entry per space-separated language id, for languages without a grammar."""
    return tuple(
        LanguageSpec(name=name, language_ids=(name,), comment=comment, imports=imports)
        for name in names.split()
    )


REGISTRY: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        language_ids=("python",),
        comment=_HASH,
        imports=re.compile(r"^(?:import\s|from\s+\S+\s+import\s)"),
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
        code=_TS_CODE,
    ),
    replace(
        _JAVASCRIPT,
        name="tsx",
        language_ids=("typescriptreact",),
        extensions=(".tsx",),
        grammar=_grammar("tree_sitter_typescript", "language_tsx", **_JS_TYPES),
        code=_TS_CODE,
    ),
    LanguageSpec(
        name="java",
        language_ids=("java",),
        comment=_SLASH,
        imports=_IMPORT_KEYWORD,
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
        code=replace(_BRACES_CODE, naming="camel", parameter_name_last=True),
    ),
    LanguageSpec(
        name="cpp",
        # The C++ grammar reads C well enough for scopes and complexity.
        language_ids=("cpp", "c", "cuda-cpp"),
        comment=_SLASH,
        imports=_C_INCLUDE,
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
        code=replace(_BRACES_CODE, parameter_name_last=True),
    ),
    LanguageSpec(
        name="go",
        language_ids=("go",),
        comment=_SLASH,
        imports=re.compile(r"^import[\s(]"),
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
        code=replace(_BRACES_CODE, naming="camel", multiline_stops=("\nfunc ", "\ntype ")),
    ),
    LanguageSpec(
        name="rust",
        language_ids=("rust",),
        comment=_SLASH,
        imports=re.compile(r"^(?:pub\s+)?(?:use|extern\s+crate)\s"),
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
        code=replace(
            _BRACES_CODE,
            lifetimes=True,
            single_line_quotes="",  # Rust's "..." may span lines
            multiline_stops=("\nfn ", "\npub fn ", "\nimpl ", "\nstruct ", "\nenum "),
        ),
    ),
    # Without a grammar: the header's comment syntax and the import lines only.
    *_text_only("ruby", _HASH, re.compile(r"^(?:require|require_relative)\s")),
    *_text_only("kotlin scala", _SLASH, _IMPORT_KEYWORD),
    *_text_only("csharp", _SLASH, re.compile(r"^using\s+[\w.]+\s*;")),
    *_text_only("php", _SLASH, re.compile(r"^(?:use|require|require_once|include|include_once)\s")),
    *_text_only("objective-c objective-cpp", _SLASH, _C_INCLUDE),
    *_text_only(
        "shellscript sh bash zsh perl r yaml toml dockerfile makefile cmake powershell elixir "
        "julia nim coffeescript graphql terraform",
        _HASH,
    ),
    *_text_only("swift dart groovy zig proto jsonc solidity verilog scss less fsharp", _SLASH),
    *_text_only("lua sql haskell elm ada vhdl", _DASH),
    *_text_only("clojure lisp scheme racket commonlisp", (";; ", "")),
    *_text_only("latex tex matlab erlang prolog", ("% ", "")),
    *_text_only("vim viml", ('" ', "")),
    *_text_only("html xml markdown vue svelte", ("<!-- ", " -->")),
    *_text_only("css", ("/* ", " */")),
    *_text_only("ocaml", ("(* ", " *)")),
)


def _index(pairs: Iterable[tuple[str, LanguageSpec]], what: str) -> dict[str, LanguageSpec]:
    """A lookup table that refuses a key claimed by two entries."""
    table: dict[str, LanguageSpec] = {}
    for key, spec in pairs:
        if table.setdefault(key, spec) is not spec:
            raise ValueError(f"{what} {key!r} belongs to both {table[key].name} and {spec.name}")
    return table


_PARSED = tuple(spec for spec in REGISTRY if spec.grammar is not None)
LANGUAGES: Mapping[str, LanguageSpec] = _index(((s.name, s) for s in REGISTRY), "name")
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(spec.name for spec in _PARSED)
GRAMMARS: Mapping[str, Grammar] = {s.name: s.grammar for s in _PARSED if s.grammar is not None}
_CODE_RULES: Mapping[str, CodeRules] = {s.name: s.code for s in _PARSED if s.code is not None}
_BY_ID = _index(((i, s) for s in REGISTRY for i in s.language_ids), "language id")
# Modules handed an editor id also accept a registry name ("tsx"); an id wins a clash.
_BY_ID_OR_NAME: Mapping[str, LanguageSpec] = {**LANGUAGES, **_BY_ID}
_GRAMMAR_BY_ID = {key: spec for key, spec in _BY_ID.items() if spec.grammar is not None}
_BY_EXTENSION = _index(((e, s) for s in REGISTRY for e in s.extensions), "extension")


def language_of(language_id: str, path: str) -> str | None:
    """The grammar for a document: from the editor's language id, else from the file extension.

    Returns one of SUPPORTED_LANGUAGES ("tsx" for TypeScript React), or None when no grammar fits.
    """
    spec = _GRAMMAR_BY_ID.get(language_id.strip().lower()) or _BY_EXTENSION.get(
        PurePath(path).suffix.lower()
    )
    return spec.name if spec is not None else None


def language_for(language_id: str) -> LanguageSpec | None:
    """The entry for an editor language id (or a registry name), grammar or not; None if none."""
    return _BY_ID_OR_NAME.get(language_id.lower())


def code_rules(language: str) -> CodeRules:
    """The text-level rules for `language` (a registry name): its own with a grammar, else
    GENERIC's."""
    return _CODE_RULES.get(language, GENERIC)


def empty_block_stub(line: str, language: str) -> str:
    """What fills the block `line` opens while its body is not written yet (`\n    pass` after
    `if n < 2:`), so that a parse can judge the line; "" when it opens none, or when the
    language needs no body."""
    rules = code_rules(language)
    if not rules.empty_block_body or not line.rstrip().endswith(rules.block_openers):
        return ""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return "\n" + indent + "    " + rules.empty_block_body
