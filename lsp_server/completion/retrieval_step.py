"""The retrieval step: snippets of the workspace's files for the prompt (prompts/retrieval.py).

A WindowIndex over the workspace's source files is kept per completion service and searched per
request with the lines before the cursor; the open documents are scored fresh from their current
text, on the same scale, and the current file is left out. The prompt step fits what it gets.

The index is never built on the request path. A request that finds the index due for a check
(none yet, the scorer changed, or REBUILD_INTERVAL_S since the last check) starts one background
thread, which reads the file set, compares its fingerprint with the indexed one and rebuilds only
when it changed; requests meanwhile use the index they have (or none: the prompt then takes the
open documents' snippets, as without retrieval).

Where the files come from:
- the workspace index (lsp_server/workspace, its `files()`: every indexed source file, open
  buffers overriding disk), once the server sets one;
- else, the FALLBACK: the workspace folders read here through the bounded walk the pattern pass
  uses (workspace/patterns.source_files: grammar languages, skipped trees and secret files left
  out, newest first, at most FALLBACK_MAX_FILES). It lets retrieval be measured and used before
  the index exists, at the cost of a walk per check.

Trade-offs:
- A rebuild is whole, not incremental: 2-5 s of one core for 100,000 lines (`flashcode bench
  retrieval`), in a thread that shares the interpreter with the event loop. The open documents,
  which change as the user types, are left out of the fingerprint (they are scored fresh anyway),
  so typing never causes a rebuild; saving or changing a closed file does, at most once per
  interval.
- Files are shown to the model by their path relative to the workspace folder holding them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Protocol

from lsp_server.completion.context import CompletionContext
from lsp_server.settings import Settings
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from lsp_server.workspace.patterns import source_files
from prompts.context import Snippet, cursor_window, display_path
from prompts.retrieval import MIN_SCORES, QUERY_LINES, Scorer, WindowIndex, family_of

log = logging.getLogger(__name__)

REBUILD_INTERVAL_S = 10.0
FALLBACK_MAX_FILES = 2_000
# Twice what a prompt holds (prompts.budget's max_snippets): it drops those already in its code.
MAX_SNIPPETS = 8


class WorkspaceFiles(Protocol):
    def files(self) -> list[tuple[Path, str]]: ...


class FolderFiles:
    """The fallback source: the workspace folders' source files, read by a bounded walk, each
    file read again only when its modification time or size changed."""

    def __init__(self, roots: Sequence[Path], secret_globs: Sequence[str]) -> None:
        self.roots = tuple(roots)
        self.secret_globs = tuple(secret_globs)
        self._texts: dict[Path, tuple[tuple[int, int], str]] = {}

    def files(self) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        texts: dict[Path, tuple[tuple[int, int], str]] = {}
        for source in source_files(self.roots, self.secret_globs, max_files=FALLBACK_MAX_FILES):
            known = self._texts.get(source.path)
            if known is not None and known[0] == source.stamp:
                text = known[1]
            else:
                try:
                    text = source.path.read_text(encoding="utf-8", errors="replace")
                except OSError as exc:
                    log.info("retrieval: skipped %s: %s", source.path, exc)
                    continue
            texts[source.path] = (source.stamp, text)
            found.append((source.path, text))
        self._texts = texts
        return found


@dataclass
class RetrievalStats:
    """What the step has done, for flashcode/stats."""

    scorer: str = "off"
    source: str = "none"  # "workspace index" | "workspace folders" | "none"
    files: int = 0
    windows: int = 0
    builds: int = 0
    last_build_ms: float = 0.0
    last_snippets: list[str] = field(default_factory=list)  # "path:line" in the last prompt

    def as_dict(self) -> dict[str, object]:
        return {
            "scorer": self.scorer,
            "source": self.source,
            "files": self.files,
            "windows": self.windows,
            "builds": self.builds,
            "lastBuildMs": round(self.last_build_ms, 1),
            "lastSnippets": list(self.last_snippets),
        }


class RetrievalStep:
    """Per completion service: the workspace's WindowIndex, rebuilt off the request path."""

    def __init__(
        self,
        interval_s: float = REBUILD_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.roots: tuple[Path, ...] = ()  # the workspace folders, set by the LSP edge
        self.stats = RetrievalStats()
        self._index: WindowIndex | None = None
        self._fingerprint: object = None
        self._checked: tuple[Scorer, float] | None = None  # the scorer and time of the last check
        self._thread: threading.Thread | None = None
        self._fallback: FolderFiles | None = None
        self._open_paths: frozenset[str] = frozenset()

    def set_roots(self, roots: Sequence[Path]) -> None:
        if tuple(roots) != self.roots:
            self.roots = tuple(roots)
            self._fallback = None

    def warm(self, settings: Settings, index: WorkspaceFiles | None) -> None:
        """Start building the index now (settings applied, workspace known), so that the first
        completion finds it ready."""
        source = self._source(settings, index)
        if source is not None:
            self.refresh(source, settings.workspace.retrieval)  # type: ignore[arg-type]

    @property
    def indexing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def report(self) -> dict[str, object]:
        return {**self.stats.as_dict(), "indexing": self.indexing}

    def snippets(
        self, context: CompletionContext, settings: Settings, index: WorkspaceFiles | None
    ) -> list[Snippet] | None:
        """Snippets for the prompt, best first; None when retrieval is off or no index is built
        yet (the prompt then takes the open documents' snippets itself)."""
        source = self._source(settings, index)
        scorer = settings.workspace.retrieval
        if source is None or scorer == "off":
            return None
        self._open_paths = frozenset(self.shown_path(d.path) for d in context.open_documents)
        self.refresh(source, scorer)
        built = self._index
        if built is None or built.scorer != scorer:
            return None
        document = context.document
        fresh = [
            dataclasses.replace(d, path=self.shown_path(d.path)) for d in context.open_documents
        ]
        return built.search(
            cursor_window(document.text, context.offset, QUERY_LINES),
            family_of(document.language_id, document.path),
            exclude_paths=[self.shown_path(document.path)],
            fresh=fresh,
            max_snippets=MAX_SNIPPETS,
            min_score=MIN_SCORES[scorer],
        )

    def shown_path(self, path: str | PurePath) -> str:
        """A path as the model sees it: relative to the workspace folder holding it."""
        pure = Path(path)
        for root in self.roots:
            if pure.is_relative_to(root):
                return pure.relative_to(root).as_posix()
        return display_path(str(path))

    def refresh(self, source: WorkspaceFiles, scorer: Scorer, wait: bool = False) -> None:
        """Start a background check of the file set when one is due; never blocks unless
        `wait` (tests and benchmarks)."""
        now = self.clock()
        checked = self._checked
        due = checked is None or checked[0] != scorer or now - checked[1] >= self.interval_s
        if due and not self.indexing:
            self._checked = (scorer, now)
            self._thread = threading.Thread(
                target=self._rebuild, args=(source, scorer), name="flashcode-retrieval", daemon=True
            )
            self._thread.start()
        if wait and self._thread is not None:
            self._thread.join()

    def _rebuild(self, source: WorkspaceFiles, scorer: Scorer) -> None:
        try:
            started = time.perf_counter()
            files = [(self.shown_path(path), text) for path, text in source.files()]
            closed = [(path, text) for path, text in files if path not in self._open_paths]
            fingerprint = (scorer, tuple((path, hash(text)) for path, text in closed))
            if fingerprint == self._fingerprint and self._index is not None:
                return
            index = WindowIndex(files, scorer)
            self._index, self._fingerprint = index, fingerprint
            self.stats.files, self.stats.windows = index.file_count, index.window_count
            self.stats.builds += 1
            self.stats.last_build_ms = (time.perf_counter() - started) * 1000
            log.info(
                "retrieval: indexed %d files (%d windows, %s) in %.0f ms",
                index.file_count, index.window_count, scorer, self.stats.last_build_ms,
            )  # fmt: skip
        except Exception:  # a failed build costs retrieval, never the completion
            log.exception("retrieval: building the window index failed")

    def _source(self, settings: Settings, index: WorkspaceFiles | None) -> WorkspaceFiles | None:
        """Where the files come from, None when retrieval is off; said in the stats."""
        on = settings.workspace.enabled and settings.workspace.retrieval != "off"
        source = (index or self._folder_files(settings)) if on else None
        self.stats.scorer = settings.workspace.retrieval if on else "off"
        self.stats.source = (
            "none" if source is None else "workspace index" if index else "workspace folders"
        )
        return source

    def _folder_files(self, settings: Settings) -> FolderFiles | None:
        if not self.roots:
            return None
        globs = (*DEFAULT_SECRET_GLOBS, *settings.cache.exclude_globs)
        if self._fallback is None or self._fallback.secret_globs != globs:
            self._fallback = FolderFiles(self.roots, globs)
        return self._fallback
