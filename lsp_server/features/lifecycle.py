"""initialize / initialized / configuration / document lifecycle, and the background model load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from lsp_server.settings import unwrap_section

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer

log = logging.getLogger(__name__)


async def pull_workspace_settings(server: FlashcodeServer) -> None:
    """Ask the client for the "flashcode" section, when it can answer."""
    capabilities = server.client_capabilities
    if not (capabilities.workspace and capabilities.workspace.configuration):
        return
    try:
        answer = await server.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="flashcode")])
        )
    except Exception as exc:  # a client that fails this request still gets completions
        log.warning("workspace/configuration failed: %s", exc)
        return
    if answer and isinstance(answer[0], dict):
        server.workspace_settings = dict(unwrap_section(answer[0]))


def apply_settings(server: FlashcodeServer) -> None:
    """Take the merged settings now, so a request that follows sees them; the model (re)loads in
    the background."""
    server.report_problems(server.refresh_settings())
    server.learn_workspace_patterns()
    server.spawn(server.models.load(server.settings))
    server.configured.emit(server)


def warn(server: FlashcodeServer, message: str) -> None:
    log.warning("%s", message)
    server.window_show_message(
        types.ShowMessageParams(type=types.MessageType.Warning, message=f"flashcode: {message}")
    )


def show_warning(server: FlashcodeServer, message: str) -> None:
    """A message that already names flashcode (the remote backend's faults)."""
    server.window_show_message(
        types.ShowMessageParams(type=types.MessageType.Warning, message=message)
    )


async def pull_and_apply_settings(server: FlashcodeServer) -> None:
    await pull_workspace_settings(server)
    apply_settings(server)


def register(server: FlashcodeServer) -> None:
    server.completions.problems.subscribe(lambda message: warn(server, message))
    server.models.problems.subscribe(lambda message: show_warning(server, message))

    @server.feature(types.INITIALIZE)
    def initialize(ls: FlashcodeServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        ls.initialization_options = (
            dict(unwrap_section(options)) if isinstance(options, dict) else {}
        )

    @server.feature(types.INITIALIZED)
    async def initialized(ls: FlashcodeServer, params: types.InitializedParams) -> None:
        # Never awaited by initialize: the model loads while the editor goes on.
        ls.spawn(pull_and_apply_settings(ls))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: FlashcodeServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, dict) and settings.get("flashcode") is not None:
            ls.workspace_settings = dict(unwrap_section(settings))
            apply_settings(ls)  # before the next message is read
        else:
            ls.spawn(pull_and_apply_settings(ls))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: FlashcodeServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.completions.forget(params.text_document.uri)
        ls.warmer.closed(params.text_document.uri)
        path = to_fs_path(params.text_document.uri)
        if path:
            ls.index_service.close_document(Path(path))  # the file on disk counts again

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: FlashcodeServer, params: None) -> None:
        ls.shutting_down = True
        ls.index_service.close(wait=False)
        if ls.owns_models:
            ls.models.close()
        ls.usage.flush()
