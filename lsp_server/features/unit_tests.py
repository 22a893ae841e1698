"""workspace/executeCommand "flashcode.generateTests": tests for the code at the cursor.

Arguments: [uri, {line, character}]. The LSP edge only: it reads the documents (the editor's
buffer when open, else the disk), reports $/progress, turns the planned edit into a
workspace/applyEdit (or creates the file itself for an editor that cannot) and tells the user
the outcome with window/showMessage. The work, its checks and its messages are in
lsp_server.testgen.command. Every problem the user can cause ends in a message, never an
exception, and nothing is written unless the whole edit can be.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.workspace import TextDocument

from lsp_server.features.positions import offset_at, position_at

# Imported at run time, not only for type checking: pygls reads the handler's annotations with
# typing.get_type_hints to convert command arguments.
from lsp_server.server import FlashcodeServer
from lsp_server.testgen import command
from lsp_server.testgen.edits import TestFileEdit, create_file

log = logging.getLogger(__name__)

COMMAND = "flashcode.generateTests"
SEVERITY = {
    "info": types.MessageType.Info,
    "warning": types.MessageType.Warning,
    "error": types.MessageType.Error,
}


def _answer(ls: FlashcodeServer, outcome: command.Outcome) -> dict[str, Any]:
    """Show the outcome and return it as the command's result."""
    ls.window_show_message(
        types.ShowMessageParams(type=SEVERITY[outcome.severity], message=outcome.message)
    )
    result, test_path = outcome.result, outcome.test_path
    if result is None or test_path is None:
        return {"message": outcome.message, "generated": 0, "kept": 0, "written": False}
    return {
        "message": outcome.message,
        "generated": len(result.candidates),
        "kept": len(result.kept),
        "verified": result.verified,
        "written": outcome.written,
        "testFile": test_path.as_uri(),
        "tests": list(result.edit.test_names) if result.edit and outcome.written else [],
        "origins": result.by_origin(result.kept),
    }


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


def workspace_roots(ls: FlashcodeServer) -> list[Path]:
    roots = []
    for folder in ls.workspace.folders.values():
        path = uris.to_fs_path(folder.uri)
        if path:
            roots.append(Path(path))
    if ls.workspace.root_path:
        roots.append(Path(ls.workspace.root_path))
    return roots


def _source(ls: FlashcodeServer, uri: str) -> TextDocument | None:
    """The open document at `uri`, or the file on disk as one; None when it cannot be read."""
    if ls.document(uri) is not None:
        return ls.workspace.get_text_document(uri)
    path = uris.to_fs_path(uri)
    if not path or not Path(path).is_file():
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return TextDocument(uri, text, language_id="", position_codec=ls.workspace.position_codec)


def _current(ls: FlashcodeServer, path: Path) -> tuple[str | None, int | None]:
    """(text, version) of the test file: the editor's buffer when open, else the disk."""
    uri = path.as_uri()
    document = ls.document(uri)
    if document is not None:
        return document.text, ls.workspace.get_text_document(uri).version
    if path.is_file():
        return path.read_text(encoding="utf-8"), None
    return None, None


@contextlib.asynccontextmanager
async def _progress(ls: FlashcodeServer, subject: str) -> AsyncIterator[Callable[[str], None]]:
    """A progress bar while the block runs, when the client shows them; yields its reporter."""
    capabilities = ls.client_capabilities
    if not (capabilities.window and capabilities.window.work_done_progress):
        yield lambda _: None
        return
    token = f"flashcode-tests-{uuid.uuid4().hex[:8]}"
    try:
        await ls.work_done_progress.create_async(token)
        ls.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="flashcode: generating tests", message=subject, cancellable=False
            ),
        )
    except Exception as exc:  # an editor that refuses a progress bar still gets the tests
        log.debug("progress refused: %s", exc)
        yield lambda _: None
        return
    try:
        yield lambda message: ls.work_done_progress.report(
            token, types.WorkDoneProgressReport(message=message)
        )
    finally:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))


def _workspace_edit(
    ls: FlashcodeServer, edit: TestFileEdit, existing: str | None, version: int | None
) -> types.WorkspaceEdit | None:
    """The workspace edit; None when the client cannot create files (we write it ourselves)."""
    uri = edit.path.as_uri()
    workspace = ls.client_capabilities.workspace
    edit_caps = workspace.workspace_edit if workspace else None
    document_changes = bool(edit_caps and edit_caps.document_changes)
    operations = (edit_caps.resource_operations or []) if edit_caps else []
    base, units = existing or "", ls.workspace.position_codec.client_num_units
    text_edits: list[types.TextEdit] = []
    for offset, text in edit.insertions:
        position = position_at(base, offset, units)
        text_edits.append(
            types.TextEdit(range=types.Range(start=position, end=position), new_text=text)
        )
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
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(text_document=identifier, edits=list(text_edits))
            ]
        )
    return types.WorkspaceEdit(changes={uri: text_edits})


async def _write(
    ls: FlashcodeServer, edit: TestFileEdit, existing: str | None, version: int | None
) -> str | None:
    """Apply the edit through the editor; returns why it was not applied, or None."""
    workspace_edit = _workspace_edit(ls, edit, existing, version)
    if workspace_edit is None:
        return create_file(edit)
    response = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=workspace_edit, label="flashcode: generated tests")
    )
    if not response.applied:
        return "the editor did not apply the edit" + (
            f": {response.failure_reason}" if response.failure_reason else ""
        )
    return None


async def generate(ls: FlashcodeServer, arguments: tuple[Any, ...]) -> dict[str, Any]:
    parsed = _parse_arguments(arguments)
    if parsed is None:
        return _answer(ls, command.bad_arguments(COMMAND))
    uri, position = parsed
    document = _source(ls, uri)
    if document is None:
        return _answer(ls, command.unreadable(uri))
    try:
        job = command.prepare(
            document.source,
            document.language_id or "",
            uris.to_fs_path(uri) or uri,
            offset_at(document, position),
            workspace_roots(ls),
            ls.models.pro,
            ls.settings,
            partial(_current, ls),
        )
    except command.Refusal as refusal:
        return _answer(ls, refusal.outcome)
    async with _progress(ls, job.definition.qualified_name) as report:
        outcome = await command.run(job, report, partial(_current, ls), partial(_write, ls))
    return _answer(ls, outcome)


def register(server: FlashcodeServer) -> None:
    @server.command(COMMAND)
    async def generate_tests(ls: FlashcodeServer, *arguments: Any) -> dict[str, Any]:
        try:
            return await generate(ls, arguments)
        except Exception as exc:  # the user sees a sentence; the log keeps the traceback
            log.exception("generating tests failed")
            return _answer(ls, command.failed(exc))
