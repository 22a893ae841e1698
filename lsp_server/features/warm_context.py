"""Warm context at the LSP edge: document events and the client's resting cursor, converted to
offsets once, go to the core (lsp_server/completion/warm.py), which prefills in the background.

`flashcode/cursor` ({"textDocument": {"uri"}, "position"}) is our own notification: LSP says
nothing of the cursor until a request, so a client may send it when the cursor rests (Neovim's
CursorHold, VS Code's selection change after a pause). Without it, the document's end and the
positions of changes and requests stand in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.workspace import TextDocument

from lsp_server.features.positions import offset_at

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer

log = logging.getLogger(__name__)

CURSOR_NOTIFICATION = "flashcode/cursor"


def change_end(document: TextDocument, params: types.DidChangeTextDocumentParams) -> int | None:
    """Where the cursor is after a change: the end of the text its last edit inserted (a str
    offset in the changed document); None for a whole-document replacement."""
    if not params.content_changes:
        return None
    change = params.content_changes[-1]
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    # The text before the edit's start is the same before and after it.
    start = offset_at(document, change.range.start)
    return None if start is None else min(start + len(change.text), len(document.source))


def _plain(value: Any) -> Any:
    """pygls hands a custom method's params over as named tuples: as dicts."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    return value


def cursor_params(params: Any) -> tuple[str, int, int] | None:
    """(uri, line, character) of a flashcode/cursor notification, or None when malformed."""
    params = _plain(params)
    try:
        uri = params["textDocument"]["uri"]
        line, character = params["position"]["line"], params["position"]["character"]
    except (KeyError, TypeError):
        return None
    if not isinstance(uri, str) or not all(
        isinstance(n, int) and n >= 0 for n in (line, character)
    ):
        return None
    return uri, line, character


def register(server: FlashcodeServer) -> None:
    warmer = server.warmer

    def on_open(params: types.DidOpenTextDocumentParams) -> None:
        warmer.opened(params.text_document.uri)

    def on_change(params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri in server.workspace.text_documents:
            warmer.changed(uri, change_end(server.workspace.get_text_document(uri), params))

    server.document_opened.subscribe(on_open)
    server.document_changed.subscribe(on_change)

    @server.feature(CURSOR_NOTIFICATION)
    def cursor(ls: FlashcodeServer, params: Any) -> None:
        found = cursor_params(params)
        if found is None:
            log.warning("%s: expected textDocument.uri and position, ignored", CURSOR_NOTIFICATION)
            return
        uri, line, character = found
        if uri not in ls.workspace.text_documents:
            return  # a document the client never opened: nothing to warm
        document = ls.workspace.get_text_document(uri)
        offset = offset_at(document, types.Position(line=line, character=character))
        if offset is not None:
            warmer.cursor_rested(uri, offset)
