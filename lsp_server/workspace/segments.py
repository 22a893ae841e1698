"""The index's token segments: a big base built once, a small delta rebuilt on every change.

Every indexed file is one document of one segment, followed by the separator. A file that
changes (or goes) is masked in the base (`TokenSuffixIndex.kill`), which keeps the base's
suffix array valid, and its new tokens go to the delta, whose suffix array is rebuilt on each
change: milliseconds, because the delta holds only the files changed since the base was built.
Once the delta outgrows DELTA_SHARE of the base, the live files of both are merged into a new
base and the delta starts empty again.

Memory is counted in tokens: `max_tokens` comes from the budget and what one token costs at
the build's peak (`peak_bytes_per_token`). Past it, the oldest files go first.

Not thread-safe: one worker thread owns it. Readers take `sources()`, a tuple of immutable
segments (their `dead` masks aside, which only ever gain masked rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.ngram import TokenSuffixIndex
from lsp_server.workspace.reader import Stamp

DELTA_SHARE = 0.2  # merge into a new base once the delta holds this share of the base's tokens
DELTA_MIN_TOKENS = 20_000  # below this, a delta is never worth a merge


def separator_for(vocab_size: int) -> int:
    """A separator no real token has: 0xFFFF keeps a small vocabulary in two bytes a token."""
    return 0xFFFF if vocab_size <= 0xFFFF else vocab_size


def token_width(separator: int) -> int:
    return 2 if separator <= 0xFFFF else 4


def peak_bytes_per_token(width: int) -> int:
    """What one token costs at the worst moment, a merge into a new base: the old base still
    serving (its ids, an int32 suffix-array row, a dead flag) while the new one is built (its
    ids, and one int32 row per byte while libdivsufsort sorts)."""
    held = width + 4 + 1
    building = width + 4 * width
    return held + building


@dataclass(frozen=True)
class Document:
    """One file's tokens, ready to go into a segment."""

    path: Path
    stamp: Stamp
    tokens: np.ndarray  # its ids, without the separator


@dataclass(frozen=True)
class Span:
    """Where a file's tokens are: tokens [start, end) of `segment`, the separator at `end`."""

    path: Path
    stamp: Stamp
    segment: TokenSuffixIndex
    start: int
    end: int

    @property
    def tokens(self) -> np.ndarray:
        return self.segment.tokens[self.start : self.end]

    def __len__(self) -> int:
        return self.end - self.start


class TokenBuffer:
    """Documents joined, each followed by the separator, in one big-endian array that grows in
    place: no per-file arrays to concatenate, and pages reserved but never written cost no
    memory, so `capacity` may be a generous guess."""

    def __init__(self, separator: int, capacity: int) -> None:
        self.separator = separator
        self._array: np.ndarray | None = np.empty(
            max(capacity, 1), dtype=np.dtype(f">u{token_width(separator)}")
        )
        self.length = 0
        self.placed: list[tuple[Path, Stamp, int, int]] = []

    def add(self, path: Path, stamp: Stamp, tokens: np.ndarray) -> None:
        array = self._array
        assert array is not None, "the buffer was already turned into a segment"
        end = self.length + len(tokens)
        if end + 1 > len(array):
            array.resize(max(end + 1, 2 * len(array)), refcheck=False)
        array[self.length : end] = tokens
        array[end] = self.separator
        self.placed.append((path, stamp, self.length, end))
        self.length = end + 1

    def segment(self) -> tuple[TokenSuffixIndex, list[Span]]:
        """The segment of every document added, and the span of each (once)."""
        array, self._array = self._array, None
        assert array is not None, "the buffer was already turned into a segment"
        array.resize(self.length, refcheck=False)
        data = array.tobytes()
        del array  # before the suffix array is sorted: the peak of a build
        segment = TokenSuffixIndex.from_token_bytes(data, self.separator)
        return segment, [Span(path, stamp, segment, s, e) for path, stamp, s, e in self.placed]


def build_segment(documents: list[Document], separator: int) -> tuple[TokenSuffixIndex, list[Span]]:
    """One segment of `documents` and the span of each."""
    buffer = TokenBuffer(separator, sum(len(doc.tokens) + 1 for doc in documents))
    for doc in documents:
        buffer.add(doc.path, doc.stamp, doc.tokens)
    return buffer.segment()


class Segments:
    """The base, the delta, and where every indexed file lives in them."""

    def __init__(self, separator: int, max_tokens: int) -> None:
        self.separator = separator
        self.max_tokens = max_tokens
        self.base: TokenSuffixIndex | None = None
        self.delta: TokenSuffixIndex | None = None
        self.spans: dict[Path, Span] = {}
        self.evicted = 0  # files dropped to stay within max_tokens since the last base build

    # -- reading ----------------------------------------------------------------------------
    def sources(self) -> tuple[TokenSuffixIndex, ...]:
        """Newest first; empty segments left out."""
        return tuple(s for s in (self.delta, self.base) if s is not None and len(s))

    @property
    def tokens(self) -> int:
        """Live tokens: those of the files indexed now."""
        return sum(len(span) for span in self.spans.values())

    @property
    def delta_tokens(self) -> int:
        return len(self.delta) if self.delta is not None else 0

    @property
    def nbytes(self) -> int:
        return sum(segment.nbytes for segment in self.sources())

    def documents(self, newest_first: bool = True) -> list[Span]:
        return sorted(
            self.spans.values(), key=lambda span: span.stamp.mtime_ns, reverse=newest_first
        )

    # -- changing ---------------------------------------------------------------------------
    def set_base(self, segment: TokenSuffixIndex, spans: Iterable[Span]) -> None:
        """A new base holding every indexed file; the delta starts empty."""
        self.base, self.delta = segment, None
        self.spans = {span.path: span for span in spans}
        self.evicted = 0

    def rebuild_base(self) -> None:
        """Merge the base's live files and the delta into a new base."""
        # Views of the old segments, which serve until the new base replaces them.
        documents = [
            Document(span.path, span.stamp, span.tokens)
            for span in self.documents(newest_first=True)
        ]
        self.set_base(*build_segment(documents, self.separator))

    def wants_merge(self) -> bool:
        base = len(self.base) if self.base is not None else 0
        return self.delta_tokens > max(DELTA_MIN_TOKENS, DELTA_SHARE * base)

    def update(self, changed: Sequence[Document], removed: Sequence[Path]) -> list[Path]:
        """Replace the files in `changed`, drop those in `removed`, rebuild the delta; returns
        the files evicted to stay within max_tokens (the oldest ones)."""
        for path in (*removed, *(doc.path for doc in changed)):
            self._forget(path)
        delta = {
            span.path: Document(span.path, span.stamp, span.tokens)
            for span in self.spans.values()
            if span.segment is self.delta
        }
        delta.update((doc.path, doc) for doc in changed if len(doc.tokens))
        for path in delta:
            self.spans.pop(path, None)
        live = [(span.stamp.mtime_ns, path, len(span)) for path, span in self.spans.items()]
        live += [(doc.stamp.mtime_ns, path, len(doc.tokens)) for path, doc in delta.items()]
        excess = sum(count for _, _, count in live) - self.max_tokens
        evicted: list[Path] = []
        for _, path, count in sorted(live):  # oldest first
            if excess <= 0:
                break
            evicted.append(path)
            excess -= count
            if delta.pop(path, None) is None:
                self._forget(path)
        self.evicted += len(evicted)
        self.delta = None
        if delta:
            self.delta, spans = build_segment(list(delta.values()), self.separator)
            self.spans.update((span.path, span) for span in spans)
        return evicted

    def _forget(self, path: Path) -> None:
        span = self.spans.pop(path, None)
        if span is not None and span.segment is self.base:
            span.segment.kill(span.start, span.end + 1)
