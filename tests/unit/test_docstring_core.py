"""Insert docstring without a server (lsp_server.docstrings): which code gets the action, the
project's style, and the model's descriptions, with a fake model. tests/lsp/test_commands.py
drives the real server and model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lsp_server import docstrings
from lsp_server.settings import Settings
from prompts.context import Document
from tests.unit.fake_engine import FakeEngine, FakeEngines


def numbers(project_dir: Path) -> Document:
    path = project_dir / "textkit" / "numbers.py"
    return Document(path.as_uri(), str(path), "python", path.read_text())


def plan(
    document: Document | None, offset: int | None, name: str, engines: FakeEngines | None
) -> docstrings.Plan:
    path = document.path if document else None
    return asyncio.run(docstrings.plan(document, path, offset, name, [], engines, Settings()))


def test_only_python_code_without_a_docstring_is_a_target(project_dir: Path) -> None:
    document = numbers(project_dir)
    percent = document.text.index("def percent")
    found = docstrings.target(document, percent)
    assert found is not None and found.qualified_name == "percent"
    assert docstrings.target(document, document.text.index("def factorial")) is None
    assert docstrings.target(document, None) is None
    markdown = Document("file:///r.md", "/r.md", "markdown", document.text)
    assert docstrings.target(markdown, percent) is None


def test_the_models_descriptions_go_into_the_projects_style(project_dir: Path) -> None:
    document = numbers(project_dir)
    engine = FakeEngine(" The share of the whole, as a number.")
    result = plan(document, document.text.index("def percent"), "percent", FakeEngines(engine))
    assert result.style == "numpy" and not result.notice
    assert result.described == len(engine.requests) > 0
    assert all(len(r.prompt_ids) + r.max_new_tokens <= engine.max_length for r in engine.requests)
    assert "Parameters\n    ----------\n    part : float\n" in result.insertion.text
    assert "The share of the whole, as a number." in result.insertion.text


def test_without_the_model_the_structure_is_still_inserted(project_dir: Path) -> None:
    document = numbers(project_dir)
    offset = document.text.index("def percent")
    loading = plan(document, offset, "percent", None)
    assert "still loading" in loading.notice and loading.described == 0
    broken = FakeEngines(FakeEngine("", fail=RuntimeError("model crashed")))
    failed = plan(document, offset, "percent", broken)
    assert failed.described == 0 and failed.insertion.text == loading.insertion.text
    assert "whole : float" in failed.insertion.text


def test_a_stale_or_broken_document_is_refused(project_dir: Path) -> None:
    document = numbers(project_dir)
    offset = document.text.index("def percent")
    with pytest.raises(docstrings.Refusal, match="changed since"):
        plan(document, offset, "clamp", None)
    with pytest.raises(docstrings.Refusal, match="changed since"):
        plan(None, offset, "percent", None)
    broken = Document(document.uri, document.path, "python", document.text + "\ndef x(:\n")
    with pytest.raises(docstrings.Refusal, match="syntax error"):
        plan(broken, offset, "percent", None)
