"""The language registry: which language a document is in, and every entry complete."""

from __future__ import annotations

import pytest

from prompts.context import comment_markers, imports
from prompts.languages import (
    FALLBACK_COMMENT,
    GENERIC,
    GRAMMARS,
    LANGUAGES,
    REGISTRY,
    SUPPORTED_LANGUAGES,
    LanguageSpec,
    code_rules,
    language_for,
    language_of,
)
from prompts.parsing import load_grammar
from prompts.scope import scope_at


@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        ("python", "app/models.py", "python"),
        ("typescriptreact", "ui/App.tsx", "tsx"),
        ("javascriptreact", "ui/App.jsx", "javascript"),
        ("c", "src/main.c", "cpp"),
        ("plaintext", "lib/stack.rs", "rust"),  # an unhelpful id falls back to the extension
        ("", "cmd/main.go", "go"),
        ("ruby", "app.rb", None),
    ],
)
def test_language_of_uses_the_editor_id_then_the_extension(
    language_id: str, path: str, expected: str | None
) -> None:
    assert language_of(language_id, path) == expected


# --- the registry ---

PARSED = [spec for spec in REGISTRY if spec.grammar is not None]
TEXT_ONLY = [spec for spec in REGISTRY if spec.grammar is None]


def test_the_supported_languages_are_the_entries_with_a_grammar() -> None:
    assert SUPPORTED_LANGUAGES == (
        "python",
        "javascript",
        "typescript",
        "tsx",
        "java",
        "cpp",
        "go",
        "rust",
    )
    assert tuple(spec.name for spec in PARSED) == SUPPORTED_LANGUAGES
    assert set(GRAMMARS) == set(SUPPORTED_LANGUAGES)


@pytest.mark.parametrize("spec", PARSED, ids=lambda spec: spec.name)
def test_every_language_with_a_grammar_is_complete_and_consistent(spec: LanguageSpec) -> None:
    assert spec.code is not None and code_rules(spec.name) is spec.code
    load_grammar(spec.name)  # its wheel is installed and loads
    assert scope_at("x", 0, spec.name).kind == "module"  # its node types make a valid query
    assert spec.extensions and spec.language_ids
    for extension in spec.extensions:
        assert extension == extension.lower() and extension.startswith(".")
        assert language_of("", f"src/file{extension}") == spec.name
    for language_id in spec.language_ids:
        assert language_of(language_id, "") == spec.name
    assert spec.imports is not None
    # The header's comment marker is the one the code rules skip.
    assert spec.comment[0].strip() == spec.code.line_comment
    assert spec.code.block_openers and spec.code.comment_line_starts


@pytest.mark.parametrize("spec", TEXT_ONLY, ids=lambda spec: spec.name)
def test_every_language_without_a_grammar_has_a_comment_syntax_and_the_generic_rules(
    spec: LanguageSpec,
) -> None:
    assert spec.language_ids == (spec.name,) and not spec.extensions
    assert spec.comment[0].strip()
    assert code_rules(spec.name) is GENERIC
    assert language_of(spec.name, "") is None


def test_names_and_language_ids_are_lower_case_and_each_names_one_entry() -> None:
    ids = [language_id for spec in REGISTRY for language_id in spec.language_ids]
    assert len(ids) == len(set(ids))
    assert all(key == key.lower() for key in (*ids, *LANGUAGES))
    for spec in REGISTRY:
        assert language_for(spec.name) is spec
        assert all(language_for(language_id) is spec for language_id in spec.language_ids)


def test_an_entry_with_a_grammar_needs_code_rules_and_extensions_need_a_grammar() -> None:
    with pytest.raises(ValueError, match="come together"):
        LanguageSpec("lang", ("lang",), ("# ", ""), grammar=GRAMMARS["python"])
    with pytest.raises(ValueError, match="extensions"):
        LanguageSpec("lang", ("lang",), ("# ", ""), extensions=(".lang",))


# --- the modules read the registry ---


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda spec: spec.name)
def test_comment_syntax_and_import_lines_come_from_the_registry(spec: LanguageSpec) -> None:
    for language_id in spec.language_ids:
        assert comment_markers(language_id) == spec.comment
        assert comment_markers(language_id.upper()) == spec.comment
        if spec.imports is None:
            assert imports("import os\n#include <x>\nuse std;\n", language_id) == []


def test_an_unknown_language_gets_the_fallbacks() -> None:
    assert language_for("cobol") is None
    assert comment_markers("cobol") == FALLBACK_COMMENT
    assert code_rules("cobol") is GENERIC
    assert imports("import os\n", "cobol") == []


def test_multiline_stop_strings_come_from_the_code_rules() -> None:
    assert code_rules("python").multiline_stops[0] == "\ndef "
    assert code_rules("java").multiline_stops == ()
    assert "\ninterface " in code_rules("tsx").multiline_stops
    assert "\ninterface " not in code_rules("javascript").multiline_stops


def test_code_comments_are_blanked_by_each_languages_markers() -> None:
    python, rust = code_rules("python").comment_pattern, code_rules("rust").comment_pattern
    assert python.sub("", "x = 1  # one\ny = '/* no */'") == "x = 1  \ny = '/* no */'"
    assert rust.sub("", "let x = 1; // one\n/* two\nlines */let y;") == "let x = 1; \nlet y;"
