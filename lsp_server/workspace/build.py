"""One full pass over the workspace: walk, read, tokenize, and build the base segment.

Files go newest first. Each is taken, in this order of preference, from the open buffer that
overrides it, from the saved index when its mtime and size are unchanged, or from disk. Texts
are tokenized in batches of about BATCH_CHARS (encoding.py), and the ids go straight into one
growing array (segments.TokenBuffer), so no more than one batch of text is held at a time. The
pass stops taking files once the token budget is spent: the older files are left out.

When every file came from the saved index, in the saved order, its suffix array is reused as
well; otherwise the base is sorted again (about a second per million tokens here), which is far
cheaper than tokenizing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.ngram import TokenSuffixIndex
from lsp_server.workspace.encoding import Encoder
from lsp_server.workspace.persist import SavedBase
from lsp_server.workspace.reader import Stamp, read_source, text_problem
from lsp_server.workspace.segments import Span, TokenBuffer
from lsp_server.workspace.walk import SourceRules, WalkResult

log = logging.getLogger(__name__)

BATCH_CHARS = 1 << 17  # text tokenized in one call (its memory, not its speed, sets this)
BATCH_FILES = 256
CHARS_PER_TOKEN = 2  # a low guess, so a batch never overshoots the budget by much


@dataclass
class BuildReport:
    """What a full pass did, for stats()."""

    skipped: Counter[str] = field(default_factory=Counter)
    entries: int = 0
    reused_files: int = 0  # tokens taken from the saved index
    tokenized_files: int = 0
    restored_suffix_array: bool = False
    seconds: float = 0.0


@dataclass
class _Pending:
    """A file waiting in the current batch: its text, or its tokens when they were saved."""

    path: Path
    stamp: Stamp
    text: str | None = None
    tokens: np.ndarray | None = None


class BasePass:
    """Builds one base segment; `stopped()` is asked between batches."""

    def __init__(
        self,
        encoder: Encoder,
        rules: SourceRules,
        separator: int,
        max_tokens: int,
        buffers: Mapping[Path, str],
        saved: SavedBase | None,
        progress: Callable[[str, int | None], None],
        stopped: Callable[[], bool],
    ) -> None:
        self.encoder = encoder
        self.rules = rules
        self.separator = separator
        self.max_tokens = max_tokens
        self.buffers = buffers
        self.saved = saved
        self.progress = progress
        self.stopped = stopped
        self.report = BuildReport()
        self.buffer = TokenBuffer(separator, 0)
        self.tokens = 0
        self._pending: list[_Pending] = []
        self._pending_chars = 0

    def run(self) -> tuple[TokenSuffixIndex, list[Span]] | None:
        """The base and its spans; None when stopped."""
        started = time.perf_counter()
        walk = self.rules.walk()
        self.report.skipped.update(walk.skipped)
        self.report.entries = walk.entries
        self.progress(f"reading {len(walk.files)} files", 0)
        # Tokens never outnumber bytes (each covers at least one): room for all, reserved only.
        room = min(sum(f.size for f in walk.files), self.max_tokens) + len(walk.files)
        self.buffer = TokenBuffer(self.separator, room)
        if not self._gather(walk):
            return None
        if self._all_restored():
            assert self.saved is not None
            self.report.restored_suffix_array = True
            built = self.saved.segment(self.separator)
        else:
            self.progress(f"sorting {self.tokens:,} tokens", 95)
            built = self.buffer.segment()
        self.report.seconds = time.perf_counter() - started
        return built

    def _gather(self, walk: WalkResult) -> bool:
        files = walk.files
        step = max(len(files) // 20, 1)
        for number, candidate in enumerate(files):
            if self.stopped():
                return False
            if self.tokens + self._pending_chars // CHARS_PER_TOKEN >= self.max_tokens:
                self._flush()
            if self.tokens >= self.max_tokens:
                self.report.skipped["over_budget"] += len(files) - number
                log.info(
                    "workspace index: budget reached; %d older files left out", len(files) - number
                )
                break
            self._take(candidate.path, Stamp(candidate.mtime_ns, candidate.size))
            if len(self._pending) >= BATCH_FILES or self._pending_chars >= BATCH_CHARS:
                self._flush()
            if number % step == step - 1:
                self.progress(f"{number + 1}/{len(files)} files", 90 * (number + 1) // len(files))
        self._flush()
        return not self.stopped()

    def _take(self, path: Path, stamp: Stamp) -> None:
        text = self.buffers.get(path)
        if text is not None:
            problem = text_problem(text, self.rules.limits.max_file_bytes)
            if problem is not None:
                self.report.skipped[problem] += 1
                return
            self._queue(_Pending(path, Stamp(time.time_ns(), -1), text=text))
            return
        saved = self.saved.files.get(path) if self.saved is not None else None
        if saved is not None and saved.stamp == stamp and self.saved is not None:
            self._queue(_Pending(path, stamp, tokens=self.saved.tokens_of(path)))
            return
        read = read_source(path, self.rules.limits.max_file_bytes)
        if read.text is None:
            self.report.skipped[read.reason or "unreadable"] += 1
            return
        self._queue(_Pending(path, read.stamp, text=read.text))

    def _queue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        self._pending_chars += len(pending.text or "")

    def _flush(self) -> None:
        batch, self._pending, self._pending_chars = self._pending, [], 0
        texts = [item.text for item in batch if item.text is not None]
        encoded = iter(self.encoder.encode(texts) if texts else [])
        for item in batch:
            if item.tokens is not None:
                tokens = item.tokens
                self.report.reused_files += 1
            else:
                tokens = next(encoded)
                self.report.tokenized_files += 1
            if not len(tokens):
                self.report.skipped["empty"] += 1
            elif self.tokens + len(tokens) > self.max_tokens:
                self.report.skipped["over_budget"] += 1
            else:
                self.buffer.add(item.path, item.stamp, tokens)
                self.tokens += len(tokens)

    def _all_restored(self) -> bool:
        saved = self.saved
        return (
            saved is not None
            and self.report.tokenized_files == 0
            and [path for path, *_ in self.buffer.placed] == list(saved.files)
            and all(stamp == saved.files[path].stamp for path, stamp, *_ in self.buffer.placed)
        )
