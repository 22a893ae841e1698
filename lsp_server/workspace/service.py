"""Which workspace index the server holds: one per set of folders, model tokenizer and settings.

The LSP edge tells this service what happens (the model is ready, the settings changed, a buffer
opened, changed or closed, files changed on disk) and it keeps at most one `WorkspaceIndex` in
step: a new tokenizer, other folders, another budget or cache directory replace the index;
`workspace.enabled = false` closes it. Open buffers are remembered here, so that an index that
starts after they were opened (the model loads after the first didOpen) still sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inference.cache.database import cache_dir
from lsp_server.settings import Settings
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from lsp_server.workspace.encoding import IndexTokenizer
from lsp_server.workspace.index import ProgressEvent, WorkspaceIndex, absolute_path
from lsp_server.workspace.walk import folders_in

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexConfig:
    """Everything that, when it changes, makes the index a different one."""

    folders: tuple[Path, ...]
    fingerprint: str
    tokenizer_id: int  # the loaded tokenizer object: a reloaded model gets a new index
    cache_dir: Path
    budget_bytes: int
    secret_globs: tuple[str, ...]


class WorkspaceIndexService:
    """Owns the server's workspace index, if it has one."""

    def __init__(self) -> None:
        self.index: WorkspaceIndex | None = None
        self._config: IndexConfig | None = None
        self._buffers: dict[Path, str] = {}
        self.on_progress: Callable[[ProgressEvent], None] | None = None

    def configure(
        self,
        settings: Settings,
        folders: Sequence[Path],
        tokenizer: IndexTokenizer | None,
        fingerprint: str,
    ) -> WorkspaceIndex | None:
        """Bring the index in line with the settings and the model; returns the index now held
        (None when there is none: switched off, no folder, or no model yet)."""
        if not settings.workspace.enabled or not folders or tokenizer is None:
            if self.index is not None:
                log.info("workspace index: closed (switched off, or no folder or model)")
            self.close()
            return None
        config = IndexConfig(
            folders=tuple(folders_in(folders)),
            fingerprint=fingerprint,
            tokenizer_id=id(tokenizer),
            cache_dir=cache_dir(settings.cache.directory),
            budget_bytes=settings.workspace.index_budget_mb * 2**20,
            secret_globs=(*DEFAULT_SECRET_GLOBS, *settings.cache.exclude_globs),
        )
        if config == self._config and self.index is not None:
            return self.index
        self.close()
        index = WorkspaceIndex(
            tokenizer,
            fingerprint=config.fingerprint,
            cache_dir=config.cache_dir,
            budget_bytes=config.budget_bytes,
            on_progress=self._progress,
            secret_globs=config.secret_globs,
        )
        for path, text in self._buffers.items():
            index.set_open_document(path, text)
        index.start(config.folders)
        self.index, self._config = index, config
        return index

    def _progress(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    def set_open_document(self, path: Path, text: str) -> None:
        path = absolute_path(path)
        self._buffers[path] = text
        if self.index is not None:
            self.index.set_open_document(path, text)

    def close_document(self, path: Path) -> None:
        path = absolute_path(path)
        self._buffers.pop(path, None)
        if self.index is not None:
            self.index.close_document(path)

    def files_changed(
        self, created: Sequence[Path], changed: Sequence[Path], deleted: Sequence[Path]
    ) -> None:
        if self.index is not None:
            self.index.files_changed(created, changed, deleted)

    def stats(self) -> dict[str, object]:
        if self.index is None:
            return {"state": "off", "ready": False}
        return self.index.stats()

    def close(self, wait: bool = True) -> None:
        index, self.index, self._config = self.index, None, None
        if index is not None:
            index.close(wait=wait)
