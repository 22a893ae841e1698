"""textDocument/completion: the suggestion as a completion item, for clients without inline ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.features.suggest import suggest_at

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer


def register(server: FlashcodeServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " "], resolve_provider=False),
    )
    async def completion(
        ls: FlashcodeServer, params: types.CompletionParams
    ) -> types.CompletionList:
        empty = types.CompletionList(is_incomplete=True, items=[])
        uri = params.text_document.uri
        invoked = (
            params.context is not None
            and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        )
        suggestion = await suggest_at(ls, uri, params.position, invoked)
        if suggestion is None:
            return empty
        language_id = ls.workspace.get_text_document(uri).language_id or ""
        first_line = (
            suggestion.text.strip().splitlines()[0] if suggestion.text.strip() else suggestion.text
        )
        return types.CompletionList(
            is_incomplete=True,
            items=[
                types.CompletionItem(
                    label=first_line[:80],
                    kind=types.CompletionItemKind.Snippet,
                    detail="flashcode",
                    documentation=types.MarkupContent(
                        kind=types.MarkupKind.Markdown,
                        value=f"```{language_id}\n{suggestion.text}\n```",
                    ),
                    insert_text_format=types.InsertTextFormat.PlainText,
                    text_edit=types.TextEdit(
                        range=types.Range(start=params.position, end=params.position),
                        new_text=suggestion.text,
                    ),
                    sort_text="0",
                    filter_text=suggestion.line_prefix.lstrip() + suggestion.text,
                    command=types.Command(
                        title="Accept",
                        command="flashcode.acceptCompletion",
                        arguments=[suggestion.id],
                    ),
                )
            ],
        )
