"""workspace/executeCommand "flashcode.generateTests": tests for the code at the cursor.

Arguments: [uri, {line, character}]. The work is in lsp_server.testgen; this module reads the
documents, reports $/progress, applies the edit with workspace/applyEdit and tells the user the
outcome with window/showMessage. Every problem the user can cause ends in a message, never an
exception, and nothing is written unless the whole edit can be.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris

from lsp_server import testgen

# Imported at run time, not only for type checking: pygls reads the handler's annotations with
# typing.get_type_hints to convert command arguments.
from lsp_server.server import FlashcodeServer
from prompts.languages import language_of
from prompts.scope import scope_at

log = logging.getLogger(__name__)

COMMAND = "flashcode.generateTests"


def _message(ls: FlashcodeServer, text: str, kind: types.MessageType) -> dict[str, Any]:
    ls.window_show_message(types.ShowMessageParams(type=kind, message=text))
    return {"message": text, "generated": 0, "kept": 0, "written": False}


def _parse_arguments(arguments: tuple[Any, ...]) -> tuple[str, types.Position] | None:
    if len(arguments) != 2 or not isinstance(arguments[0], str):
        return None
    raw = arguments[1]
    if isinstance(raw, types.Position):
        return arguments[0], raw
    if isinstance(raw, dict) and isinstance(raw.get("line"), int):
        character = raw.get("character", 0)
        if isinstance(character, int):
            return arguments[0], types.Position(line=raw["line"], character=character)
    return None


def _offset(text: str, position: types.Position, units: Callable[[str], int]) -> int | None:
    """The str index of a position counted in `units`, or None when it is outside the text."""
    lines = text.split("\n")
    if not 0 <= position.line < len(lines) or position.character < 0:
        return None
    line = lines[position.line].rstrip("\r")
    count = column = 0
    while column < len(line) and count < position.character:
        count += units(line[column])
        column += 1
    if count < position.character:
        return None
    return sum(len(item) + 1 for item in lines[: position.line]) + column


def _syntax_error(text: str) -> str | None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    return None


def workspace_roots(ls: FlashcodeServer) -> list[Path]:
    roots = []
    for folder in ls.workspace.folders.values():
        path = uris.to_fs_path(folder.uri)
        if path:
            roots.append(Path(path))
    if ls.workspace.root_path:
        roots.append(Path(ls.workspace.root_path))
    return roots


def _progress(ls: FlashcodeServer) -> tuple[str | None, Callable[[str], None]]:
    capabilities = ls.client_capabilities
    if not (capabilities.window and capabilities.window.work_done_progress):
        return None, lambda _: None
    token = f"flashcode-tests-{uuid.uuid4().hex[:8]}"

    def report(message: str) -> None:
        ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

    return token, report


def _edit_for(
    ls: FlashcodeServer, edit: testgen.TestFileEdit, existing: str | None, version: int | None
) -> types.WorkspaceEdit | None:
    """The workspace edit; None when the client cannot create files (we write it ourselves)."""
    uri = edit.path.as_uri()
    workspace = ls.client_capabilities.workspace
    edit_caps = workspace.workspace_edit if workspace else None
    document_changes = bool(edit_caps and edit_caps.document_changes)
    operations = (edit_caps.resource_operations or []) if edit_caps else []
    base = existing or ""
    text_edits = [
        types.TextEdit(
            range=types.Range(
                start=testgen.position_of(base, offset), end=testgen.position_of(base, offset)
            ),
            new_text=text,
        )
        for offset, text in edit.insertions
    ]
    if edit.create:
        if not (document_changes and types.ResourceOperationKind.Create in operations):
            return None
        return types.WorkspaceEdit(
            document_changes=[
                types.CreateFile(
                    uri=uri,
                    options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False),
                ),
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri),
                    edits=list(text_edits),
                ),
            ]
        )
    if document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=list(text_edits),
                )
            ]
        )
    return types.WorkspaceEdit(changes={uri: text_edits})


async def _write(
    ls: FlashcodeServer, edit: testgen.TestFileEdit, existing: str | None, version: int | None
) -> str | None:
    """Apply the edit through the editor; returns why it was not applied, or None."""
    problem = testgen.check_writable(edit.path)
    if problem:
        return problem
    workspace_edit = _edit_for(ls, edit, existing, version)
    if workspace_edit is None:
        # The editor cannot create files: create it here. Mode "x" never replaces a file.
        try:
            edit.path.parent.mkdir(parents=True, exist_ok=True)
            with edit.path.open("x", encoding="utf-8") as out:
                out.write(edit.new_text)
        except OSError as exc:
            return f"could not create {edit.path}: {exc.strerror or exc}"
        return None
    response = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=workspace_edit, label="flashcode: generated tests")
    )
    if not response.applied:
        return "the editor did not apply the edit" + (
            f": {response.failure_reason}" if response.failure_reason else ""
        )
    return None


_locks: dict[Path, asyncio.Lock] = {}


def _lock(path: Path) -> asyncio.Lock:
    """One writer per test file: two commands must not plan against the same old text."""
    return _locks.setdefault(path, asyncio.Lock())


def _current(ls: FlashcodeServer, path: Path) -> tuple[str | None, int | None]:
    """(text, version) of the test file: the editor's buffer when open, else the disk."""
    uri = path.as_uri()
    document = ls.document(uri)
    if document is not None:
        return document.text, ls.workspace.get_text_document(uri).version
    if path.is_file():
        return path.read_text(encoding="utf-8"), None
    return None, None


def _source(ls: FlashcodeServer, uri: str) -> tuple[str, str, str] | None:
    """(text, language id, path) of an open document, or of the file on disk."""
    document = ls.document(uri)
    if document is not None:
        return document.text, document.language_id, uris.to_fs_path(uri) or document.path
    path = uris.to_fs_path(uri)
    if not path or not Path(path).is_file():
        return None
    try:
        return Path(path).read_text(encoding="utf-8"), "", path
    except (OSError, UnicodeDecodeError):
        return None


async def generate(ls: FlashcodeServer, arguments: tuple[Any, ...]) -> dict[str, Any]:
    error, warning = types.MessageType.Error, types.MessageType.Warning
    parsed = _parse_arguments(arguments)
    if parsed is None:
        return _message(ls, f"{COMMAND} needs two arguments: a document URI and a position.", error)
    uri, position = parsed
    source = _source(ls, uri)
    if source is None:
        return _message(ls, f"flashcode cannot read {uri}.", error)
    text, language_id, path = source
    name = Path(path).name
    if language_of(language_id, path) != "python":
        return _message(
            ls, f"Generate unit tests works on Python files; {name} is not one.", warning
        )
    units = ls.workspace.position_codec.client_num_units
    offset = _offset(text, position, units)
    if offset is None:
        return _message(ls, f"The position is outside {name}.", error)
    problem = _syntax_error(text)
    if problem:
        return _message(
            ls, f"{name} has a syntax error ({problem}); fix it before generating tests.", warning
        )
    definition = testgen.definition_near(text, offset)
    if definition is None:
        return _message(
            ls,
            "Put the cursor on a function, method or class to generate tests for it.",
            warning,
        )
    if ls.models.pro is None:
        return _message(ls, "The flashcode model is still loading; try again in a moment.", warning)
    try:
        project = testgen.locate_project(Path(path), workspace_roots(ls), ls.settings.tests.python)
    except testgen.TestGenError as exc:
        return _message(ls, f"Cannot generate tests: {exc}.", warning)
    test_label = project.relative(project.test_path)
    unwritable = testgen.check_writable(project.test_path)
    if unwritable:
        return _message(
            ls, f"Cannot write tests to {test_label}: {unwritable}. Nothing was changed.", error
        )
    test_uri = project.test_path.as_uri()
    existing, version = _current(ls, project.test_path)
    engine = ls.models.pro.pick(
        scope_at(text, offset, "python").complexity, ls.settings.int8_complexity
    )
    token, report = _progress(ls)
    if token is not None:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="flashcode: generating tests",
                    message=definition.qualified_name,
                    cancellable=False,
                ),
            )
        except Exception as exc:  # an editor that refuses a progress bar still gets the tests
            log.debug("progress refused: %s", exc)
            token, report = None, lambda _: None
    try:
        result = await testgen.generate_tests(
            engine,
            project,
            text,
            definition,
            existing,
            run_generated=ls.settings.tests.run_generated,
            timeout_s=ls.settings.tests.timeout_seconds,
            fim_override=ls.settings.fim_template,
            progress=report,
        )
        async with _lock(project.test_path):
            # The file may have changed while the tests were made: plan against it as it is.
            current, version = _current(ls, project.test_path)
            if current != existing:
                result = testgen.plan_for(result, project, current)
            summary = testgen.summary_message(result, test_label)
            written = False
            if result.edit is not None:
                report(f"writing {test_label}")
                failure = await _write(ls, result.edit, current, version)
                if failure:
                    summary = (
                        f"flashcode generated {len(result.candidates)} tests but could not "
                        f"write {test_label}: {failure}. Nothing was changed."
                    )
                written = failure is None
    except testgen.TestGenError as exc:
        return _message(ls, f"Cannot generate tests: {exc}.", warning)
    finally:
        if token is not None:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
    kind = types.MessageType.Info if written else warning
    ls.window_show_message(types.ShowMessageParams(type=kind, message=summary))
    log.info(
        "generated tests for %s: %d candidates, %d kept, verified=%s, model %.0f ms, run %.0f ms",
        definition.qualified_name,
        len(result.candidates),
        len(result.kept),
        result.verified,
        result.model_ms,
        result.run_ms,
    )
    return {
        "message": summary,
        "generated": len(result.candidates),
        "kept": len(result.kept),
        "verified": result.verified,
        "written": written,
        "testFile": test_uri,
        "tests": list(result.edit.test_names) if result.edit and written else [],
        "origins": result.by_origin(result.kept),
    }


def register(server: FlashcodeServer) -> None:
    @server.command(COMMAND)
    async def generate_tests(ls: FlashcodeServer, *arguments: Any) -> dict[str, Any]:
        try:
            return await generate(ls, arguments)
        except Exception as exc:  # the user sees a sentence; the log keeps the traceback
            log.exception("generating tests failed")
            return _message(
                ls, f"flashcode could not generate tests: {exc}", types.MessageType.Error
            )
