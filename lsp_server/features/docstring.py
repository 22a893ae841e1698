"""textDocument/codeAction "Insert docstring", resolved lazily with codeAction/resolve.

Listing the action is cheap (a syntax-tree lookup); the model writes the descriptions only when
the user picks it. The docstring's structure and style come from prompts.docstrings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris

# Imported at run time, not only for type checking: pygls reads handler annotations.
from lsp_server.server import FlashcodeServer
from lsp_server.testgen import (
    HolePrompter,
    Sampling,
    definition_near,
    find_root,
    position_of,
    sample_holes,
)
from prompts.definitions import Definition
from prompts.docstrings import (
    clean_description,
    description_holes,
    detect_style,
    docstring_insertion,
    render_docstring,
)
from prompts.fim import FimTemplate, select_template
from prompts.languages import language_of
from prompts.parsing import parses
from prompts.scope import scope_at

log = logging.getLogger(__name__)

TITLE = "Insert docstring"
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "venv", "env", "node_modules", "build", "dist", "__pycache__", ".tox"}
)
STYLE_SAMPLE_FILES = 40  # files read from disk to learn the workspace's docstring style
DESCRIPTION_TOKENS = 24


def project_texts(root: Path, limit: int = STYLE_SAMPLE_FILES) -> Iterator[str]:
    """Python sources of the project, for style detection: a bounded walk, big files skipped."""
    count = 0
    stack = [root]
    while stack and count < limit:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                if entry.name not in SKIPPED_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.suffix == ".py" and count < limit:
                try:
                    if entry.stat().st_size < 200_000:
                        count += 1
                        yield entry.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue


def workspace_style(ls: FlashcodeServer, uri: str, text: str) -> str:
    texts = [text, *(d.text for d in ls.open_documents(uri) if d.path.endswith(".py"))]
    path = uris.to_fs_path(uri)
    if path:
        texts += list(project_texts(find_root(Path(path))))
    return detect_style(texts)


async def describe(
    engine: Any, text: str, definition: Definition, style: str, fim_override: str = ""
) -> dict[str, str]:
    """Descriptions by DocField key, from the model; keys it answered badly are left out."""
    holes = description_holes(text, definition, style)
    try:
        template: FimTemplate | None = select_template(
            engine.tokenizer.special_tokens, fim_override or None
        )
    except ValueError:
        template = None
    context = int(getattr(engine.model, "context_length", 1024))
    prompter = HolePrompter(engine, template, context - DESCRIPTION_TOKENS - 1)
    sampling = Sampling(samples=1, deadline_s=20.0)
    answers = await asyncio.gather(
        *(
            sample_holes(prompter, hole.prefix, hole.suffix, DESCRIPTION_TOKENS, sampling)
            for hole in holes
        )
    )
    result: dict[str, str] = {}
    for hole, texts in zip(holes, answers, strict=True):
        cleaned = clean_description(texts[0]) if texts else None
        if cleaned:
            result[hole.field.key] = cleaned
    return result


def _target(ls: FlashcodeServer, uri: str, position: types.Position) -> Definition | None:
    document = ls.document(uri)
    if document is None or language_of(document.language_id, document.path) != "python":
        return None
    offset = ls.offset_of(uri, position)
    if offset is None:
        return None
    definition = definition_near(document.text, offset)
    if definition is None or definition.docstring is not None:
        return None
    return definition


def docstring_edit(
    uri: str,
    text: str,
    definition: Definition,
    style: str,
    descriptions: Mapping[str, str],
    version: int | None,
    units: Callable[[str], int],
) -> types.WorkspaceEdit:
    docstring = render_docstring(definition, style, descriptions)
    insertion = docstring_insertion(text, definition, docstring)
    edit = types.TextEdit(
        range=types.Range(
            start=position_of(text, insertion.start, units),
            end=position_of(text, insertion.end, units),
        ),
        new_text=insertion.text,
    )
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=version
                ),
                edits=[edit],
            )
        ]
    )


def register(server: FlashcodeServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True
        ),
    )
    def code_action(
        ls: FlashcodeServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        only = params.context.only
        if only and not any(
            types.CodeActionKind.RefactorRewrite.value.startswith(kind) for kind in only
        ):
            return None
        uri = params.text_document.uri
        definition = _target(ls, uri, params.range.start)
        if definition is None:
            return None
        document = ls.workspace.get_text_document(uri)
        data = {
            "uri": uri,
            "line": params.range.start.line,
            "character": params.range.start.character,
            "name": definition.qualified_name,
        }
        action = types.CodeAction(title=TITLE, kind=types.CodeActionKind.RefactorRewrite, data=data)
        if not parses(document.source, "python"):
            capabilities = ls.client_capabilities.text_document
            code_actions = capabilities.code_action if capabilities else None
            if not (code_actions and code_actions.disabled_support):
                return None
            action.disabled = types.CodeActionDisabled(
                reason="the file has a syntax error; fix it first"
            )
        return [action]

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: FlashcodeServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri = data.get("uri")
        line, character = data.get("line"), data.get("character")
        if not isinstance(uri, str) or not isinstance(line, int) or not isinstance(character, int):
            return action
        definition = _target(ls, uri, types.Position(line=line, character=character))
        document = ls.document(uri)
        if definition is None or document is None or definition.qualified_name != data.get("name"):
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message="The code changed since the action was offered; ask for it again.",
                )
            )
            return action
        if not parses(document.text, "python"):
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=f"{Path(document.path).name} has a syntax error; "
                    "fix it before inserting a docstring.",
                )
            )
            return action
        style = workspace_style(ls, uri, document.text)
        descriptions: dict[str, str] = {}
        if ls.models.pro is not None:
            offset = ls.offset_of(uri, types.Position(line=line, character=character)) or 0
            engine = ls.models.pro.pick(
                scope_at(document.text, offset, "python").complexity, ls.settings.int8_complexity
            )
            try:
                descriptions = await describe(
                    engine, document.text, definition, style, ls.settings.fim_template
                )
            except Exception as exc:  # the structure is still worth inserting
                log.warning("docstring descriptions failed: %s", exc)
        else:
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Info,
                    message="The flashcode model is still loading: the docstring's "
                    "descriptions are placeholders made from the names.",
                )
            )
        version = ls.workspace.get_text_document(uri).version
        action.edit = docstring_edit(
            uri,
            document.text,
            definition,
            style,
            descriptions,
            version,
            ls.workspace.position_codec.client_num_units,
        )
        log.info(
            "docstring for %s: style %s, %d descriptions from the model",
            definition.qualified_name,
            style,
            len(descriptions),
        )
        return action
