"""The language registry: which language a document is in."""

from __future__ import annotations

import pytest

from prompts.languages import language_of


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
