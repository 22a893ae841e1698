"""Usage counting wired to the server: the recorder hears every completion and acceptance, and
says a usage file it cannot use once, as a warning. The figures go out in flashcode/stats
(status.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer


def register(server: FlashcodeServer) -> None:
    def warn(message: str) -> None:
        server.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=message)
        )

    server.usage.on_warning = warn
    server.usage.attach(server.completions)
