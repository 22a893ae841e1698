"""The workspace index at the LSP edge: started with the model, fed by the document lifecycle.

- It starts once the model is ready (its tokenizer is the index's) with the workspace folders
  (workspaceFolders, else rootUri), and follows settings changes; completions are served all
  along, from whatever the index holds so far (nothing before its first build ends).
- The build shows as `$/progress` (after window/workDoneProgress/create, when the client has
  progress bars), from begin to end.
- didOpen/didChange give an open buffer's text, which overrides its file; didClose (in
  lifecycle.py) goes back to the file; didSave and workspace/didChangeWatchedFiles (registered
  for source files and .gitignore when the client can register it) read files again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from inference.engine import Engine
from lsp_server.backends.local import ModelManager
from lsp_server.settings import Settings
from lsp_server.workspace.index import ProgressEvent
from lsp_server.workspace.persist import tokenizer_fingerprint
from prompts.languages import REGISTRY

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer

log = logging.getLogger(__name__)

WATCHER_ID = "flashcode-workspace-index-watcher"


def watched_globs() -> list[str]:
    """The files whose changes on disk matter to the index: sources, and .gitignore files."""
    extensions = sorted({ext.lstrip(".") for spec in REGISTRY for ext in spec.extensions})
    return [f"**/*.{{{','.join(extensions)}}}", "**/.gitignore"]


class ProgressBridge:
    """Hands the index worker's progress events to the event loop, in order, as `$/progress`."""

    def __init__(self, server: FlashcodeServer) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self.token: str | None = None
        self.watching = False  # file watching registered with the client
        self.configuring = asyncio.Lock()  # one configure at a time, in the order asked
        self._task: asyncio.Task[None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is None:
            self.loop = loop
            self._task = loop.create_task(self._drain())

    def __call__(self, event: ProgressEvent) -> None:
        """From any thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def _supported(self) -> bool:
        window = self.server.client_capabilities.window
        return bool(window and window.work_done_progress)

    async def _drain(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self._send(event)
            except Exception as exc:  # the editor refused a bar: indexing goes on without one
                log.debug("workspace index progress not shown: %s", exc)

    async def _send(self, event: ProgressEvent) -> None:
        progress = self.server.work_done_progress
        if event.kind == "begin":
            if self.token is not None:  # a rescan began before the last one ended
                progress.end(self.token, types.WorkDoneProgressEnd())
                self.token = None
            if not self._supported():
                return
            token = f"flashcode-index-{uuid.uuid4().hex[:8]}"
            await progress.create_async(token)
            self.token = token
            progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="flashcode index", message=event.message, cancellable=False, percentage=0
                ),
            )
        elif self.token is not None and event.kind == "report":
            progress.report(
                self.token,
                types.WorkDoneProgressReport(message=event.message, percentage=event.percentage),
            )
        elif self.token is not None and event.kind == "end":
            progress.end(self.token, types.WorkDoneProgressEnd(message=event.message))
            self.token = None


async def configure(server: FlashcodeServer, bridge: ProgressBridge) -> None:
    """Start, keep or replace the index for the current settings, folders and model."""
    bridge.attach(asyncio.get_running_loop())
    async with bridge.configuring:
        models = server.models
        primary = models.flash.primary if models.ready and models.flash is not None else None
        # The index is in the local model's tokens; a remote backend's decoder cannot use it.
        engine = primary if isinstance(primary, Engine) else None
        fingerprint = ""
        if engine is not None and server.settings.workspace.enabled:
            try:
                fingerprint = await asyncio.to_thread(
                    tokenizer_fingerprint, engine.model.path / "tokenizer.json"
                )
            except OSError as exc:
                log.warning("workspace index: cannot read the model's tokenizer (%s)", exc)
                engine = None
        index = server.index_service.configure(
            server.settings,
            server.workspace_roots(),
            engine.tokenizer if engine is not None else None,
            fingerprint,
        )
        server.completions.workspace_index = index
    if index is not None:
        await watch_files(server, bridge)


async def watch_files(server: FlashcodeServer, bridge: ProgressBridge) -> None:
    """Ask the client to report changes to source files, when it can register for that."""
    if bridge.watching:
        return
    workspace = server.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if not (watched and watched.dynamic_registration):
        return
    bridge.watching = True
    watchers = [types.FileSystemWatcher(glob_pattern=glob) for glob in watched_globs()]
    try:
        await server.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id=WATCHER_ID,
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=watchers
                        ),
                    )
                ]
            )
        )
    except Exception as exc:  # saved files still come through didSave
        log.info("workspace index: the client did not register file watching (%s)", exc)


def _path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


def register(server: FlashcodeServer) -> None:
    bridge = ProgressBridge(server)
    server.index_service.on_progress = bridge

    def on_models(models: ModelManager) -> None:
        if models.ready and not server.shutting_down:
            server.spawn(configure(server, bridge))

    def on_settings(settings: Settings) -> None:
        # The index needs the model's tokenizer: it follows once the model is ready. Switched
        # off, it closes at once.
        if not settings.workspace.enabled:
            server.index_service.close(wait=False)
            server.completions.workspace_index = None
        elif server.models.ready and not server.shutting_down:
            server.spawn(configure(server, bridge))

    server.models.changed.subscribe(on_models)
    server.settings_changed.subscribe(on_settings)

    def buffer(ls: FlashcodeServer, uri: str) -> None:
        path = _path(uri)
        if path is not None and uri in ls.workspace.text_documents:
            ls.index_service.set_open_document(path, ls.workspace.get_text_document(uri).source)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: FlashcodeServer, params: types.DidOpenTextDocumentParams) -> None:
        buffer(ls, params.text_document.uri)
        ls.document_opened.emit(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: FlashcodeServer, params: types.DidChangeTextDocumentParams) -> None:
        buffer(ls, params.text_document.uri)
        ls.document_changed.emit(params)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: FlashcodeServer, params: types.DidSaveTextDocumentParams) -> None:
        path = _path(params.text_document.uri)
        if path is not None:
            ls.index_service.files_changed([], [path], [])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(
        ls: FlashcodeServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        kinds: dict[types.FileChangeType, list[Path]] = {kind: [] for kind in types.FileChangeType}
        for change in params.changes:
            path = _path(change.uri)
            if path is not None:
                kinds[change.type].append(path)
        ls.index_service.files_changed(
            kinds[types.FileChangeType.Created],
            kinds[types.FileChangeType.Changed],
            kinds[types.FileChangeType.Deleted],
        )
