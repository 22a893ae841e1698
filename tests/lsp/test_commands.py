""" "Generate unit tests" and "Insert docstring" end to end: the real server, the real model,
a copy of tests/fixtures/sample_project as the workspace. The client applies workspace edits to
disk as an editor would, so the tests check the files a user would get."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from benchmarks.commands import apply_text_edits, apply_workspace_edit
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import open_document, server_config

SAMPLE = ROOT / "tests" / "fixtures" / "sample_project"
COMMAND = "flashcode.generateTests"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("workspace") / "sample_project"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return target


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def client(lsp_client: LanguageClient, project: Path) -> Any:
    lsp_client.applied = []  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(
        client: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        apply_workspace_edit(params.edit)
        client.applied.append(params.edit)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    ready = asyncio.Event()

    @lsp_client.feature("flashcode/status")
    def on_status(client: LanguageClient, params: Any) -> None:
        # pygls hands custom notifications over as a namedtuple, not a dict.
        state = params.get("state") if isinstance(params, dict) else params.state
        if state == "ready":
            ready.set()

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=project.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=project.as_uri(), name="sample")],
            initialization_options={"tests": {"timeoutSeconds": 60}},
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=120)
    yield
    await lsp_client.shutdown_session()


def open_file(client: LanguageClient, path: Path, language_id: str = "python") -> str:
    return open_document(client, str(path), path.read_text(), language_id)


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().split("\n")) if needle in line)


async def generate(client: LanguageClient, uri: str, line: int, character: int = 4) -> Any:
    before = len(client.messages)
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=COMMAND, arguments=[uri, {"line": line, "character": character}]
        )
    )
    messages = [m.message for m in client.messages[before:]]
    return result, messages


async def code_actions(
    client: LanguageClient, uri: str, line: int, character: int
) -> list[types.CodeAction]:
    position = types.Position(line=line, character=character)
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


def run_pytest(project: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def field(result: Any, name: str) -> Any:
    return result[name] if isinstance(result, dict) else getattr(result, name)


async def test_generated_tests_are_written_and_pytest_runs_them(
    client: LanguageClient, project: Path
) -> None:
    source = project / "textkit" / "numbers.py"
    target = project / "tests" / "test_numbers.py"
    assert not target.exists()
    uri = open_file(client, source)
    result, messages = await generate(client, uri, line_of(source, "def factorial"))
    kept = field(result, "kept")
    assert messages and f"generated {field(result, 'generated')} tests for" in messages[-1]
    # factorial documents an example and raises ValueError: at least those two must pass.
    assert kept >= 2, messages
    assert f"{kept} passed" in messages[-1]
    assert target.is_file()
    written = target.read_text()
    assert "from textkit.numbers import factorial" in written
    run = run_pytest(project, "tests/test_numbers.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{kept} passed" in run.stdout
    # The progress bar began and ended.
    kinds = [[type(v).__name__ for v in reports] for reports in client.progress_reports.values()]
    assert any(k[0] == "WorkDoneProgressBegin" and k[-1] == "WorkDoneProgressEnd" for k in kinds)


async def test_model_tests_pass_or_the_message_says_none_did(
    client: LanguageClient, project: Path
) -> None:
    # clamp has no docstring examples: what passes comes from the model or the raised error.
    source = project / "textkit" / "numbers.py"
    uri = open_file(client, source)
    result, messages = await generate(client, uri, line_of(source, "def clamp"))
    if field(result, "kept"):
        assert re.search(r"\d+ passed and (was|were) added to tests/test_numbers\.py", messages[-1])
        run = run_pytest(project, "tests/test_numbers.py")
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert "none passed" in messages[-1]


async def test_existing_test_file_is_appended_to_and_keeps_its_tests(
    client: LanguageClient, project: Path
) -> None:
    source = project / "textkit" / "strings.py"
    target = project / "tests" / "test_strings.py"
    original = target.read_text()
    uri = open_file(client, source)
    result, messages = await generate(client, uri, line_of(source, "def truncate"))
    assert field(result, "kept") >= 1, messages
    updated = target.read_text()
    assert updated.startswith(original.split("\n\n\n", 1)[0])  # the imports are still first
    # Every original line is still there, in order: only lines were added.
    remaining = iter(updated.split("\n"))
    assert all(any(line == seen for seen in remaining) for line in original.split("\n"))
    names = re.findall(r"^def (test_\w+)", updated, re.M)
    assert len(names) == len(set(names)), "a generated test shadows an existing one"
    run = run_pytest(project, "tests/test_strings.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(names)} passed" in run.stdout


async def test_docstring_action_lists_every_parameter_in_the_project_style(
    client: LanguageClient, project: Path
) -> None:
    source = project / "textkit" / "numbers.py"
    text = source.read_text()
    uri = open_document(client, str(source.with_name("numbers_view.py")), text)
    line = line_of(source, "def percent")
    actions = await code_actions(client, uri, line, 6)
    action = actions[0]
    assert action.title == "Insert docstring"
    assert action.kind == types.CodeActionKind.RefactorRewrite
    assert action.edit is None, "the edit is computed on resolve, not when listing"
    resolved = await client.code_action_resolve_async(action)
    assert resolved.edit is not None and resolved.edit.document_changes
    change = resolved.edit.document_changes[0]
    assert isinstance(change, types.TextDocumentEdit)
    new_text = apply_text_edits(text, [e for e in change.edits if isinstance(e, types.TextEdit)])
    tree = ast.parse(new_text)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "percent")
    docstring = ast.get_docstring(function, clean=False) or ""
    # The sample project writes NumPy-style docstrings: every parameter with its annotation.
    assert re.search(r"^\s*Parameters\n\s*-{10}$", docstring, re.M), docstring
    for declaration in ("part : float", "whole : float", "digits : int, optional"):
        assert re.search(rf"^\s*{declaration}\n\s+\S", docstring, re.M), docstring
    assert re.search(r"^\s*Returns\n\s*-{7}\n\s*float\n", docstring, re.M), docstring
    assert re.search(r"^\s*Raises\n\s*-{6}\n\s*ZeroDivisionError\n", docstring, re.M), docstring
    # Nothing else changed: removing the inserted lines gives the original back.
    inserted = change.edits[0].new_text if isinstance(change.edits[0], types.TextEdit) else ""
    assert new_text.replace(inserted, "", 1) == text
    lines = inserted.split("\n")
    assert lines[0].startswith('    """') and lines[-2] == '    """'


async def test_no_docstring_action_where_there_is_one(
    client: LanguageClient, project: Path
) -> None:
    source = project / "textkit" / "numbers.py"
    uri = open_file(client, source)
    line = line_of(source, "def factorial")
    actions = await code_actions(client, uri, line, 6)
    assert not [a for a in actions if a.title == "Insert docstring"]


async def test_bad_input_gets_a_clear_message_and_loses_nothing(
    client: LanguageClient, project: Path
) -> None:
    before = {p: p.read_text() for p in project.rglob("*") if p.is_file()}
    source = project / "textkit" / "strings.py"
    uri = open_file(client, source)

    _, messages = await generate(client, uri, line_of(source, "import re") + 1, 0)
    assert "Put the cursor on a function, method or class" in messages[-1]

    readme = project / "README.md"
    readme_uri = open_document(client, str(readme), "# textkit\n\nHelpers.\n", "markdown")
    _, messages = await generate(client, readme_uri, 0, 2)
    assert "works on Python files" in messages[-1]

    broken = "def half(x):\n    return x /\n"
    broken_uri = open_document(client, str(project / "textkit" / "broken.py"), broken)
    _, messages = await generate(client, broken_uri, 0, 5)
    assert "syntax error" in messages[-1] and "line 2" in messages[-1]

    _, messages = await generate(client, uri, 999, 0)
    assert "outside" in messages[-1]

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=COMMAND, arguments=[uri])
    )
    assert "needs two arguments" in field(result, "message")

    assert {p: p.read_text() for p in project.rglob("*") if p.is_file()} == before


async def test_read_only_test_file_is_left_alone(client: LanguageClient, project: Path) -> None:
    source = project / "textkit" / "strings.py"
    target = project / "tests" / "test_strings.py"
    original = target.read_text()
    mode = target.stat().st_mode
    target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        uri = open_file(client, source)
        result, messages = await generate(client, uri, line_of(source, "def slugify"))
        assert "read-only" in messages[-1] and "Nothing was changed" in messages[-1]
        assert field(result, "written") is False
        assert target.read_text() == original
    finally:
        target.chmod(mode)
    # The server keeps serving after all of this.
    source_text = source.read_text()
    line = line_of(source, "def initials")
    actions = await code_actions(client, uri, line, 5)
    assert [a.title for a in actions] == ["Insert docstring"]
    assert source_text == source.read_text()


async def test_running_switched_off_inserts_unverified_and_says_so(
    client: LanguageClient, project: Path
) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"flashcode": {"tests": {"runGenerated": False}}}
        )
    )
    try:
        source = project / "textkit" / "inventory.py"
        uri = open_file(client, source)
        result, messages = await generate(client, uri, line_of(source, "def remove"))
        assert field(result, "verified") is False
        assert "UNVERIFIED" in messages[-1] and "switched off" in messages[-1]
        written = (project / "tests" / "test_inventory.py").read_text()
        assert field(result, "kept") == len(re.findall(r"^def test_", written, re.M))
        ast.parse(written)
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"flashcode": {"tests": {"runGenerated": True}}}
            )
        )
