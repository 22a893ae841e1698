"""The workspace index: every source file of the workspace as token ids, searchable by suffix.

`WorkspaceIndex` is what the rest of the server sees. `start()` returns at once; one worker
thread walks the folders, builds the base segment (build.py) and then applies changes as they
come: open buffers override their files (didOpen/didChange), closing one goes back to the disk
version, and saved, created, changed and deleted files are read again. Changes are coalesced
for `settle_seconds`, so a burst of keystrokes costs one update; an update re-tokenizes only
the files it names and rebuilds the small delta segment (segments.py). Decode steps read
`sources()`, a tuple swapped in whole, so they never wait for the worker.

The base is saved in the cache directory after every build (persist.py), so a restart
tokenizes only the files whose mtime or size changed. Memory is bounded by `budget_bytes`,
counted at the build's peak; the walk by WalkLimits (walk.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from inference.ngram import TokenSuffixIndex
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from lsp_server.workspace.build import BasePass, BuildReport
from lsp_server.workspace.encoding import Encoder, IndexTokenizer
from lsp_server.workspace.persist import index_directory, load_base, save_base
from lsp_server.workspace.reader import Stamp, read_source, text_problem
from lsp_server.workspace.segments import (
    Document,
    Segments,
    peak_bytes_per_token,
    separator_for,
    token_width,
)
from lsp_server.workspace.walk import (
    DEFAULT_LIMITS,
    GITIGNORE,
    SourceRules,
    WalkLimits,
    folders_in,
)

log = logging.getLogger(__name__)

State = Literal["idle", "building", "ready", "failed", "closed"]


@dataclass(frozen=True)
class ProgressEvent:
    """What the build reports, for `$/progress`: begin, some reports, one end."""

    kind: Literal["begin", "report", "end"]
    message: str
    percentage: int | None = None


@dataclass
class _Counters:
    state: State = "idle"
    report: BuildReport = field(default_factory=BuildReport)
    updates: int = 0
    last_update_ms: float = 0.0
    merges: int = 0
    evicted: int = 0
    error: str = ""


class WorkspaceIndex:
    """The workspace's source files as token segments (newest first), kept up to date."""

    def __init__(
        self,
        tokenizer: IndexTokenizer,
        *,
        fingerprint: str,
        cache_dir: Path | None,
        budget_bytes: int,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        secret_globs: Sequence[str] = DEFAULT_SECRET_GLOBS,
        limits: WalkLimits = DEFAULT_LIMITS,
        settle_seconds: float = 0.15,
    ) -> None:
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.cache_dir = cache_dir
        self.budget_bytes = budget_bytes
        self.separator = separator_for(tokenizer.vocab_size)
        self.max_tokens = budget_bytes // peak_bytes_per_token(token_width(self.separator))
        self.secret_globs = tuple(secret_globs)
        self.limits = limits
        self.settle_seconds = settle_seconds
        self.generation = 0  # bumps whenever sources() or files() change
        self._encoder = Encoder(tokenizer, token_width(self.separator))
        self._on_progress = on_progress
        self._segments = Segments(self.separator, self.max_tokens)
        self._sources: tuple[TokenSuffixIndex, ...] = ()
        self._folders: list[Path] = []
        self._rules: SourceRules | None = None
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffers: dict[Path, str] = {}  # open documents' texts, by absolute path
        self._dirty: set[Path] = set()
        self._rescan = False
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- the API ----------------------------------------------------------------------------
    def start(self, folders: Sequence[Path]) -> None:
        """Walk and index `folders` on a background thread; returns at once."""
        with self._lock:
            if self._thread is not None or self._closing:
                raise RuntimeError("a workspace index starts once")
            self._folders = folders_in(folders)
            self._counters.state = "building"
            self._thread = threading.Thread(target=self._run, name="workspace-index", daemon=True)
        self._thread.start()

    def sources(self) -> tuple[TokenSuffixIndex, ...]:
        """The current segments, newest first; () until the first build is done."""
        return self._sources

    def span_of(self, path: Path) -> tuple[TokenSuffixIndex, int, int] | None:
        """Where a file's tokens are now: (segment, start, end); None when it is not indexed."""
        span = self._segments.spans.get(absolute_path(path))
        return (span.segment, span.start, span.end) if span is not None else None

    @property
    def ready(self) -> bool:
        return self._counters.state == "ready"

    def set_open_document(self, path: Path, text: str) -> None:
        """An open buffer's text, which overrides its file on disk until it is closed."""
        path = absolute_path(path)
        with self._wake:
            self._buffers[path] = text
            self._mark(path)

    def close_document(self, path: Path) -> None:
        """The buffer is closed: the file on disk counts again (or nothing, if it is not one)."""
        path = absolute_path(path)
        with self._wake:
            if self._buffers.pop(path, None) is not None:
                self._mark(path)

    def files_changed(
        self, created: Sequence[Path], changed: Sequence[Path], deleted: Sequence[Path]
    ) -> None:
        """Files changed on disk (didSave, workspace/didChangeWatchedFiles); an open buffer
        still wins over its file."""
        with self._wake:
            for path in map(absolute_path, (*created, *changed, *deleted)):
                if path.name == GITIGNORE:
                    self._rescan = True
                    self._wake.notify()
                elif path not in self._buffers:
                    self._mark(path)

    def files(self) -> list[tuple[Path, str]]:
        """(path, text) of every indexed file, newest first: the text the index holds (an open
        buffer's, else the file's when it was read), decoded from its tokens. About a second
        per ten million tokens: call it off the event loop."""
        with self._lock:
            spans = self._segments.documents(newest_first=True)
        decode = getattr(self.tokenizer, "decode_batch", None)
        ids = [span.tokens.tolist() for span in spans]
        texts = decode(ids) if decode is not None else [self.tokenizer.decode(i) for i in ids]
        return [(span.path, text) for span, text in zip(spans, texts, strict=True)]

    def stats(self) -> dict[str, object]:
        with self._lock:
            counters, segments = self._counters, self._segments
            report = counters.report
            return {
                "state": counters.state,
                "ready": counters.state == "ready",
                "folders": [str(folder) for folder in self._folders],
                "files": len(segments.spans),
                "tokens": segments.tokens,
                "bytes": segments.nbytes,
                "budget_bytes": self.budget_bytes,
                "max_tokens": self.max_tokens,
                "segments": len(self._sources),
                "delta_tokens": segments.delta_tokens,
                "open_documents": len(self._buffers),
                "build_seconds": round(report.seconds, 3),
                "entries_seen": report.entries,
                "reused_files": report.reused_files,
                "tokenized_files": report.tokenized_files,
                "restored_suffix_array": report.restored_suffix_array,
                "skipped": dict(sorted(report.skipped.items())),
                "updates": counters.updates,
                "last_update_ms": round(counters.last_update_ms, 2),
                "merges": counters.merges,
                "evicted": counters.evicted,
                "generation": self.generation,
                **({"error": counters.error} if counters.error else {}),
            }

    def close(self, wait: bool = True) -> None:
        """Stop the worker (it finishes the batch it is on; `wait` for it) and drop the
        segments."""
        with self._wake:
            self._closing = True
            self._wake.notify()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        with self._lock:
            self._counters.state = "closed"
            self._sources = ()

    # -- the worker -------------------------------------------------------------------------
    def _mark(self, path: Path) -> None:
        self._dirty.add(path)
        self._wake.notify()

    def _emit(
        self, kind: Literal["begin", "report", "end"], message: str, pct: int | None = None
    ) -> None:
        if self._on_progress is not None:
            try:
                self._on_progress(ProgressEvent(kind, message, pct))
            except Exception:  # a broken listener must not stop the index
                log.exception("workspace index: progress listener failed")

    def _stopped(self) -> bool:
        return self._closing

    def _run(self) -> None:
        if self._build():
            while (work := self._next_work()) is not None:
                dirty, rescan = work
                try:
                    if rescan:
                        self._build()
                    elif dirty:
                        self._update(dirty)
                except Exception:  # a bad update keeps the last good index
                    log.exception("workspace index: an update failed; the index stays as it was")

    def _next_work(self) -> tuple[set[Path], bool] | None:
        with self._wake:
            self._wake.wait_for(lambda: self._dirty or self._rescan or self._closing)
            # Changes that follow within the settling time join this batch.
            self._wake.wait_for(lambda: self._closing, timeout=self.settle_seconds)
            if self._closing:
                return None
            dirty, self._dirty = self._dirty, set()
            rescan, self._rescan = self._rescan, False
            return dirty, rescan

    def _build(self) -> bool:
        """One full pass; False when it failed or the index was closed meanwhile."""
        self._emit("begin", f"indexing {', '.join(f.name or str(f) for f in self._folders)}")
        try:
            built = self._build_base()
        except Exception as exc:
            log.exception("workspace index: the build failed")
            with self._lock:
                self._counters.state, self._counters.error = "failed", str(exc)
            self._emit("end", f"workspace index failed: {exc}")
            return False
        if built is None:
            self._emit("end", "stopped")
            return False
        stats = self.stats()
        self._emit("end", f"{stats['files']} files, {stats['tokens']:,} tokens")
        log.info(
            "workspace index: %d files, %d tokens in %.1fs (%d tokenized, %d from the saved index)",
            stats["files"], stats["tokens"], stats["build_seconds"],
            stats["tokenized_files"], stats["reused_files"],
        )  # fmt: skip
        return True

    def _build_base(self) -> bool | None:
        rules = SourceRules(self._folders, self.secret_globs, self.limits)
        directory = (
            index_directory(self.cache_dir, self._folders, self.fingerprint)
            if self.cache_dir is not None
            else None
        )
        saved = load_base(directory, self.fingerprint, self.separator) if directory else None
        with self._lock:
            buffers = dict(self._buffers)
        work = BasePass(
            self._encoder,
            rules,
            self.separator,
            self.max_tokens,
            buffers,
            saved,
            lambda message, pct: self._emit("report", message, pct),
            self._stopped,
        )
        built = work.run()
        del saved  # unmaps the saved tokens; a restored suffix array stays mapped
        if built is None:
            return None
        segment, spans = built
        with self._lock:
            self._rules = rules
            self._segments.set_base(segment, spans)
            self._counters.report = work.report
            self._counters.state = "ready"
            self._publish()
        if directory is not None and not work.report.restored_suffix_array:
            self._save(directory)
        return True

    def _save(self, directory: Path) -> None:
        base = self._segments.base
        if base is None or not len(base):
            return
        try:
            save_base(directory, self.fingerprint, base, list(self._segments.spans.values()))
        except OSError as exc:
            log.warning("workspace index: could not save the index in %s (%s)", directory, exc)

    def _publish(self) -> None:
        """Swap in the current segments (the lock is held)."""
        self._sources = self._segments.sources()
        self.generation += 1

    def _update(self, dirty: set[Path]) -> None:
        started = time.perf_counter()
        with self._lock:
            buffers = {path: self._buffers[path] for path in dirty if path in self._buffers}
        texts: list[tuple[Path, Stamp, str]] = []
        removed: list[Path] = []
        for path in sorted(dirty):
            found = self._current_text(path, buffers.get(path))
            if found is None:
                removed.append(path)
            else:
                texts.append((path, *found))
        encoded = self._encoder.encode([text for *_, text in texts]) if texts else []
        changed = [
            Document(path, stamp, tokens)
            for (path, stamp, _), tokens in zip(texts, encoded, strict=True)
        ]
        with self._lock:
            evicted = self._segments.update(changed, removed)
            self._counters.evicted += len(evicted)
            self._counters.updates += 1
            self._counters.last_update_ms = (time.perf_counter() - started) * 1000
            merge = self._segments.wants_merge()
            self._publish()  # with its counters: a reader that sees the change sees its cost
        if merge:
            self._merge()

    def _current_text(self, path: Path, buffer: str | None) -> tuple[Stamp, str] | None:
        """The text a changed path should be indexed with, or None when it should not be."""
        rules = self._rules
        max_bytes = self.limits.max_file_bytes
        if buffer is not None:
            checker = rules or SourceRules([], self.secret_globs, self.limits)
            if checker.is_source(path) or text_problem(buffer, max_bytes):
                return None
            return Stamp(time.time_ns(), -1), buffer
        if rules is None or rules.admit(path) is not None:
            return None
        read = read_source(path, max_bytes)
        return (read.stamp, read.text) if read.text is not None else None

    def _merge(self) -> None:
        """Fold the delta into a new base (the old segments serve meanwhile), and save it."""
        started = time.perf_counter()
        segments = Segments(self.separator, self.max_tokens)
        with self._lock:
            segments.base, segments.delta = self._segments.base, self._segments.delta
            segments.spans = dict(self._segments.spans)
        segments.rebuild_base()
        with self._lock:
            self._segments = segments
            self._counters.merges += 1
            self._publish()
        log.info(
            "workspace index: merged the changes into a new base in %.2fs",
            time.perf_counter() - started,
        )
        if self.cache_dir is not None:
            self._save(index_directory(self.cache_dir, self._folders, self.fingerprint))


def absolute_path(path: Path) -> Path:
    """How the index names a file: absolute and normalised, links not resolved (as the walk
    finds it and as an editor's URI names it)."""
    return Path(os.path.abspath(path))
