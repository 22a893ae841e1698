"""Server construction: state on a LanguageServer subclass, one module per feature."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from lsp_server.backends.local import ModelManager
from lsp_server.completion.pipeline import CompletionService
from lsp_server.completion.warm import ContextWarmer
from lsp_server.events import Signal
from lsp_server.native_memory import IdleTrimmer
from lsp_server.settings import Settings, merge
from lsp_server.transport import serve_stdio
from lsp_server.usage.recorder import UsageRecorder
from lsp_server.workspace.patterns import WorkspaceLearning, workspace_pass
from lsp_server.workspace.service import WorkspaceIndexService
from prompts.context import Document

log = logging.getLogger(__name__)

NAME = "flashcode"
VERSION = "0.1.0"


def _innermost_message(error: BaseException | None) -> str:
    """cattrs nests validation errors in exception groups; the innermost one names the field."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return str(error) if error is not None else ""


class FlashcodeProtocol(LanguageServerProtocol):
    """pygls drops a request it cannot structure (a negative line, say) without answering, and
    the client waits forever. Answer it with an error naming the method instead."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        is_request = "jsonrpc" in data and "id" in data and "method" in data
        if is_request and "params" not in data:
            # JSON-RPC lets a request leave params out; pygls' request type requires the key.
            data = {**data, "params": None}
        try:
            return super().structure_message(data)
        except (JsonRpcInvalidParams, JsonRpcInternalError) as exc:
            if is_request:
                detail = _innermost_message(exc.__cause__) or "the params do not validate"
                what = "params" if isinstance(exc, JsonRpcInvalidParams) else "request"
                self._send_response(
                    data["id"],
                    error=types.ResponseError(
                        code=exc.CODE, message=f"invalid {what} for {data['method']}: {detail}"
                    ),
                )
            raise

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Callable[[Future[Any]], None],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """pygls files the future of every handler that is not a plain function in its table of
        requests, and only an answer takes one out. A notification (didOpen, didChange, didClose
        are generators there) and each step a generator hands on have no answer, so every
        keystroke kept a future for the life of the server. Take each out once it is done."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget(msg_id, done))

    def _forget(self, msg_id: Any, future: Future[Any]) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """`exit` ends the process, except for one of several clients over TCP: then it ends
        that client's connection only."""
        server = self._server
        if not isinstance(server, FlashcodeServer) or server.owns_models:
            yield from super().lsp_exit(*args)
            return
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        if self.writer is not None:
            self.writer.close()  # the connection's reader then sees its end


class AnsweredErrorsInOneLine(logging.Filter):
    """pygls logs the traceback of a message it could not structure (cattrs' nested exception
    groups, dozens of lines) although the client already got an error naming the field. Above
    debug such a record keeps one line; the traceback stays for debug. A cancel that lost the race
    with its answer (every few keystrokes while typing) is logged at debug only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if str(record.msg).startswith("Unable to deserialize message"):
            return False  # the same failure, logged again below with its exception
        if str(record.msg).startswith("Cancel notification for unknown message id"):
            return False  # an editor's cancel that crossed the answer on the wire: routine
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, JsonRpcInvalidParams | JsonRpcInternalError):
            detail = _innermost_message(error.__cause__) or str(error)
            record.msg, record.args = f"rejected a message: {detail}", ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# Where pygls logs a message it could not handle (stdio and TCP readers, the JSON-RPC protocol).
_PYGLS_MESSAGE_LOGGERS = ("pygls.io_", "pygls.protocol.json_rpc", "pygls.server")
_one_line = AnsweredErrorsInOneLine()


def apply_log_level(level: str) -> None:
    """Our loggers follow the setting; pygls' wire log (whole messages, document text included)
    only at debug."""
    logging.getLogger().setLevel(level.upper())
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    for name in _PYGLS_MESSAGE_LOGGERS:
        if _one_line not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_one_line)


class FlashcodeServer(LanguageServer):
    """The language server, with the state every feature shares."""

    def __init__(
        self, base_settings: dict[str, Any] | None = None, models: ModelManager | None = None
    ) -> None:
        super().__init__(
            NAME,
            VERSION,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=FlashcodeProtocol,
        )
        # From the command line: the lowest layer above the config file.
        self.base_settings = base_settings or {}
        self.initialization_options: dict[str, Any] = {}
        self.workspace_settings: dict[str, Any] = {}
        self.settings, _ = merge(self.base_settings)
        # A model shared with other connections (TCP) is theirs too: this server never closes it.
        self.owns_models = models is None
        self.models = models if models is not None else ModelManager()
        self.completions = CompletionService(self.models)
        self.completions.cache.on_warning = self._cache_warning
        self.usage = UsageRecorder()  # counts from the settings on; features/usage.py wires it
        self.background: set[asyncio.Task[Any]] = set()
        self.load_progress_token: str | None = None
        self.workspace_learning: WorkspaceLearning | None = None  # None until it starts
        # Keeps the workspace index in step; the index itself is completions.workspace_index.
        self.index_service = WorkspaceIndexService()
        self.settings_changed: Signal[Settings] = Signal()  # after every refresh_settings
        self.shutting_down = False
        self.configured: Signal[FlashcodeServer] = Signal()  # after settings are (re)applied
        # didOpen / didChange, after the workspace index took the new text (one handler each)
        self.document_opened: Signal[types.DidOpenTextDocumentParams] = Signal()
        self.document_changed: Signal[types.DidChangeTextDocumentParams] = Signal()
        # Prefills the likely prompt of a document in the background (features/warm_context.py).
        self.warmer = ContextWarmer(
            self.completions.likely_prompt, self._document_and_others, self._current_settings
        )
        self._closers: list[Callable[[], None]] = []  # undo subscriptions to shared objects
        # `flashcode serve --log-level`: a level asked for on the command line (to debug a
        # session) wins over the editor's logLevel setting, which usually just carries the default.
        self.pinned_log_level: str | None = None
        self.memory = IdleTrimmer()  # freed native memory goes back to the system in pauses

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        if stdin is None and stdout is None and serve_stdio(self):
            return
        super().start_io(stdin, stdout)

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, JsonRpcInvalidParams):
            return  # already answered with the error, and logged in one line by pygls' reader
        super().report_server_error(error, source)

    # -- settings ---------------------------------------------------------------------------
    def refresh_settings(self) -> list[str]:
        self.settings, problems = merge(
            self.base_settings, self.initialization_options, self.workspace_settings
        )
        apply_log_level(self.pinned_log_level or self.settings.log_level)
        self.completions.retrieval.set_roots(self.workspace_roots())
        self.completions.apply_settings(self.settings)
        self.usage.configure(self.settings)
        self.settings_changed.emit(self.settings)
        return problems

    def workspace_roots(self) -> list[Path]:
        """The workspace folders' paths, or the root path of a client that sends no folders."""
        roots = [Path(path) for uri in self.workspace.folders if (path := to_fs_path(uri))]
        if not roots and self.workspace.root_path:
            roots = [Path(self.workspace.root_path)]
        return roots

    def learn_workspace_patterns(self) -> None:
        """Start the one background pass over the workspace's files (workspace/patterns.py)."""
        if self.workspace_learning is not None:
            return
        roots = self.workspace_roots()
        progress = WorkspaceLearning()
        work = workspace_pass(
            roots, self.settings.cache, self.completions.cache, progress, self._stopping
        )
        if work is not None:
            self.workspace_learning = progress
            self.spawn(work)

    def _stopping(self) -> bool:
        return self.shutting_down

    def _cache_warning(self, message: str) -> None:
        # A rebuilt cache database: completions go on, the user should know where the old one went.
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=message)
        )

    def report_problems(self, problems: list[str]) -> None:
        if problems:
            message = "flashcode settings: " + "; ".join(problems) + " (defaults used instead)"
            log.warning(message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            )

    # -- documents --------------------------------------------------------------------------
    def document(self, uri: str) -> Document | None:
        """The open document at `uri`, or None when the client never opened it."""
        if uri not in self.workspace.text_documents:
            return None
        doc = self.workspace.get_text_document(uri)
        return Document(
            uri=uri, path=doc.path or uri, language_id=doc.language_id or "", text=doc.source
        )

    def _document_and_others(self, uri: str) -> tuple[Document, list[Document]] | None:
        document = self.document(uri)
        return (document, self.open_documents(uri)) if document is not None else None

    def _current_settings(self) -> Settings:
        return self.settings

    def open_documents(self, except_uri: str) -> list[Document]:
        result = []
        for uri in list(self.workspace.text_documents):
            if uri != except_uri:
                document = self.document(uri)
                if document is not None:
                    result.append(document)
        return result

    # -- background work ----------------------------------------------------------------------
    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- the end ------------------------------------------------------------------------------
    def on_close(self, closer: Callable[[], None]) -> None:
        """Run `closer` when this server's connection ends (to unsubscribe from shared objects)."""
        self._closers.append(closer)

    @property
    def exit_code(self) -> int:
        """What the process ends with: 0 after a shutdown request, else 1 (as LSP asks of `exit`;
        an editor that vanished without shutdown gets the same)."""
        return 0 if self.protocol._shutdown else 1

    def release(self) -> None:
        """The session is over (the process ends next): the cache writes what it counted, the
        model thread stops."""
        self.shutting_down = True
        self.memory.close()
        self.warmer.close()
        self.completions.close()
        if self.owns_models:
            self.models.close()

    async def end_connection(self, wait_s: float = 10.0) -> None:
        """One client of a shared process is gone: stop its work and let go of what it held,
        leaving the shared model to the others. Background work is waited for, not cancelled:
        a model load it started belongs to every client."""
        self.shutting_down = True
        self.memory.close()
        for closer in self._closers:
            closer()
        self._closers.clear()
        self.warmer.close()
        if self.background:
            await asyncio.wait(set(self.background), timeout=wait_s)
        self.completions.close()
