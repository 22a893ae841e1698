"""The LSP edge: one module per feature, each exposing `register(server)`.

Features import the server module; the server module imports no feature, so there is no cycle.
The status feature learns of model and completion events by subscribing to them.
"""

from __future__ import annotations

from typing import Any

from lsp_server.backends.local import ModelManager
from lsp_server.features import (
    completion,
    docstring,
    inline_completion,
    lifecycle,
    status,
    unit_tests,
    usage,
    warm_context,
    workspace_index,
)
from lsp_server.server import FlashcodeServer


def build_server(
    base_settings: dict[str, Any] | None = None,
    models: ModelManager | None = None,
    log_level: str | None = None,
) -> FlashcodeServer:
    """A server with every feature; `models` shares a model with other servers (TCP clients);
    `log_level` (the command line's) wins over the logLevel setting."""
    server = FlashcodeServer(base_settings, models)
    server.pinned_log_level = log_level
    features = (
        lifecycle, inline_completion, completion, status, unit_tests, docstring, usage, warm_context
    )  # fmt: skip
    for feature in (*features, workspace_index):
        feature.register(server)
    return server
