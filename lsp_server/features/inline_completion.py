"""textDocument/inlineCompletion: ghost text at the cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.features.suggest import suggest_at

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer

ACCEPT_COMMAND = "flashcode.acceptCompletion"


def register(server: FlashcodeServer) -> None:
    # Passing options is what makes pygls announce inlineCompletionProvider in initialize.
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: FlashcodeServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        suggestion = await suggest_at(ls, params.text_document.uri, params.position, invoked)
        if suggestion is None:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(
                    insert_text=suggestion.text,
                    range=types.Range(start=params.position, end=params.position),
                    command=types.Command(
                        title="Accept", command=ACCEPT_COMMAND, arguments=[suggestion.id]
                    ),
                )
            ]
        )

    # pygls reads a command's type hints at run time, where FlashcodeServer (imported only for
    # type checking) is not defined: the handler closes over `server` instead of naming it.
    @server.command(ACCEPT_COMMAND)
    def accept(suggestion_id: str) -> bool:
        return server.completions.accepted(suggestion_id)
