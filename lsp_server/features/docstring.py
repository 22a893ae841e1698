"""textDocument/codeAction "Insert docstring", resolved lazily with codeAction/resolve.

The LSP edge only: positions in and out, the action and its edit. Listing the action is cheap
(a syntax-tree lookup); the model writes the descriptions only when the user picks it. The
work is in lsp_server.docstrings.
"""

from __future__ import annotations

from lsprotocol import types
from pygls import uris

from lsp_server import docstrings
from lsp_server.features.positions import offset_at, position_at

# Imported at run time, not only for type checking: pygls reads handler annotations.
from lsp_server.server import FlashcodeServer
from prompts.docstrings import Insertion
from prompts.parsing import parses


def _disabled_support(ls: FlashcodeServer) -> bool:
    capabilities = ls.client_capabilities.text_document
    code_actions = capabilities.code_action if capabilities else None
    return bool(code_actions and code_actions.disabled_support)


def _edit(ls: FlashcodeServer, uri: str, text: str, insertion: Insertion) -> types.WorkspaceEdit:
    units = ls.workspace.position_codec.client_num_units
    start, end = position_at(text, insertion.start, units), position_at(text, insertion.end, units)
    document = types.OptionalVersionedTextDocumentIdentifier(
        uri=uri, version=ls.workspace.get_text_document(uri).version
    )
    edit = types.TextEdit(range=types.Range(start=start, end=end), new_text=insertion.text)
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(text_document=document, edits=[edit])]
    )


def _show(ls: FlashcodeServer, kind: types.MessageType, message: str) -> None:
    ls.window_show_message(types.ShowMessageParams(type=kind, message=message))


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
        rewrite = types.CodeActionKind.RefactorRewrite
        only = params.context.only
        if only and not any(rewrite.value.startswith(kind) for kind in only):
            return None
        uri, start = params.text_document.uri, params.range.start
        document = ls.document(uri)
        offset = offset_at(ls.workspace.get_text_document(uri), start) if document else None
        definition = docstrings.target(document, offset) if document else None
        if document is None or definition is None:
            return None
        data = {
            "uri": uri,
            "line": start.line,
            "character": start.character,
            "name": definition.qualified_name,
        }
        action = types.CodeAction(title=docstrings.TITLE, kind=rewrite, data=data)
        if not parses(document.text, "python"):
            if not _disabled_support(ls):
                return None
            action.disabled = types.CodeActionDisabled(reason=docstrings.SYNTAX_ERROR_REASON)
        return [action]

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: FlashcodeServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri, line, character = data.get("uri"), data.get("line"), data.get("character")
        if not isinstance(uri, str) or not isinstance(line, int) or not isinstance(character, int):
            return action
        document = ls.document(uri)
        position = types.Position(line=line, character=character)
        offset = offset_at(ls.workspace.get_text_document(uri), position) if document else None
        try:
            plan = await docstrings.plan(
                document,
                uris.to_fs_path(uri),
                offset,
                data.get("name"),
                ls.open_documents(uri),
                ls.models.pro,
                ls.settings,
            )
        except docstrings.Refusal as refusal:
            _show(ls, types.MessageType.Warning, str(refusal))
            return action
        if plan.notice:
            _show(ls, types.MessageType.Info, plan.notice)
        assert document is not None, "plan refuses a missing document"
        action.edit = _edit(ls, uri, document.text, plan.insertion)
        return action
