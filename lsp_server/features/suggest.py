"""The cursor of a completion request, converted once, and the core's suggestion for it.

Inline completion and classic completion both answer from `suggest_at`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.completion.pipeline import Suggestion
from lsp_server.features.positions import offset_at

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer


async def suggest_at(
    server: FlashcodeServer, uri: str, position: types.Position, invoked: bool = False
) -> Suggestion | None:
    """The suggestion for a cursor, or None: unknown document, language switched off,
    position outside the text, or nothing to show. `invoked` when the user asked explicitly
    rather than by typing."""
    document = server.document(uri)
    if document is None or not server.settings.language_enabled(document.language_id):
        return None
    offset = offset_at(server.workspace.get_text_document(uri), position)
    if offset is None:
        return None
    server.warmer.requested(uri, offset)
    try:
        return await server.completions.suggest(
            document, offset, server.open_documents(uri), server.settings, invoked
        )
    finally:
        server.memory.request_done()
