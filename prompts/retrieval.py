"""Retrieval of related code from many files: RepoCoder-style sliding windows, two scorers.

Every file is cut into windows of WINDOW_LINES lines, one starting every STRIDE lines, so any
stretch of STRIDE lines lies whole in some window and a window that matches the code before the
cursor often holds what came next there too (the RepoCoder setting). A query is the code just
before the cursor (context.cursor_window, QUERY_LINES lines); the best windows of other files,
of the cursor's language family, come back as Snippets, best first.

Two scorers behind one interface, chosen when the index is built:
- "bm25": Okapi BM25 (bm25s, Lucene's variant) over identifier tokens: rare identifiers weigh
  most, and an identifier used often in a window counts more. Its score is divided by the most
  a window could reach for the query (the sum of the query terms' idf): 0..1, like Jaccard's.
- "jaccard": Jaccard similarity of identifier sets (context.identifiers / context.jaccard), the
  neighbouring-tabs measure the open-document snippets used alone so far.

Trade-offs:
- The index is built once for a set of files and never updated: a caller rebuilds it when files
  change (lsp_server/completion/retrieval_step.py does so off the request path). Files that
  change as the user types (the open documents) are scored fresh per request instead, against
  the index's statistics, and their indexed windows are left out; every candidate then shares
  one scale and is ranked with the others.
- A query scores every window of its family through posting lists (numpy), not a loop over
  windows: a few milliseconds for 100,000 lines. The windows are not stored as text; a snippet
  is cut from its file's text by line offsets when it is returned.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Literal

import numpy as np

from prompts.context import Document, Snippet, already_in, identifiers, jaccard
from prompts.languages import LANGUAGES, language_for, language_of

Scorer = Literal["bm25", "jaccard"]
SCORERS: tuple[Scorer, ...] = ("bm25", "jaccard")
# 20 lines every 10 is RepoCoder's setting. Shorter windows serve a small prompt better: with
# 1,024 tokens and a long file under the cursor, snippets get about 200 tokens, and a 20-line
# window rarely fits there whole. Measured on eval repo's cases (benchmarks/retrieval_eval.py
# --no-model, the share of holes whose answer reached the prompt): 12/6 and 8/4 found the most,
# 20/10 a third of that; 16/8 about as many as 12/6 in more tokens.
WINDOW_LINES = 12
STRIDE = 6
# The query: the lines just before the cursor. The nearest lines say most about what comes
# next; 6 found more answers than 12, and 12 more than 20 (the same measurement).
QUERY_LINES = 6
# The least score worth a place in the prompt, per scorer (on their 0..1 scales).
MIN_SCORES: dict[Scorer, float] = {"bm25": 0.1, "jaccard": 0.1}
MAX_FILE_CHARS = 200_000  # longer files are indexed in their first part only
_CANDIDATES = 64  # best windows looked at, before overlaps and repeats are skipped
# BM25's constants: bm25s's defaults, Lucene's.
_K1 = 1.5
_B = 0.75

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def family_of(language_id: str, path: str) -> str:
    """The language family of a file (documents of one family are related), from the editor's
    language id when there is one, else from the extension; the extension itself for a file
    the registry does not know."""
    spec = language_for(language_id) if language_id else None
    if spec is None:
        name = language_of("", path)
        spec = LANGUAGES[name] if name is not None else None
    if spec is not None:
        return spec.family
    dot = path.rfind(".")
    return path[dot:].lower() if dot > max(path.rfind("/"), path.rfind("\\")) else ""


def code_tokens(text: str) -> list[str]:
    """BM25's terms: the identifiers that are not keywords, in order, repeats kept (BM25 counts
    them). Splitting compound names into their snake_case / camelCase parts as well was
    measured, and found no more answers (benchmarks/retrieval_eval.py): the parts are common
    words, and they dilute the rare whole names that make a match."""
    keep = identifiers(text)
    return [word for word in _IDENTIFIER.findall(text) if word in keep]


def _terms(text: str, scorer: Scorer) -> list[str]:
    return code_tokens(text) if scorer == "bm25" else sorted(identifiers(text))


def _line_offsets(text: str) -> list[int]:
    """Where each line starts, and the text's end last."""
    offsets = [0]
    offsets.extend(m.end() for m in re.finditer("\n", text))
    if offsets[-1] != len(text):
        offsets.append(len(text))
    return offsets


def _window_starts(line_count: int, window_lines: int, stride: int) -> range:
    return range(0, max(1, line_count - window_lines + stride), stride)


@lru_cache(maxsize=256)
def _fresh_windows(
    text: str, scorer: Scorer, window_lines: int, stride: int
) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(first line, terms) of each window of a text scored per request (an open document);
    cached, because other open documents change less often than the cursor moves."""
    text = text[:MAX_FILE_CHARS]
    offsets = _line_offsets(text)
    lines = [_terms(text[a:b], scorer) for a, b in pairwise(offsets)]
    return tuple(
        (start, tuple(t for line in lines[start : start + window_lines] for t in line))
        for start in _window_starts(len(lines), window_lines, stride)
    )


@dataclass(frozen=True)
class _File:
    path: str
    text: str
    offsets: tuple[int, ...]  # line starts, then the text's end

    def lines(self, start: int, count: int) -> str:
        end = min(start + count, len(self.offsets) - 1)
        text = self.text[self.offsets[start] : self.offsets[end]]
        return text if text.endswith("\n") else text + "\n"


class _FamilyIndex:
    """The windows of one language family's files, their posting lists and, for BM25, bm25s's
    score matrix."""

    def __init__(
        self, files: Sequence[tuple[str, str]], scorer: Scorer, window_lines: int, stride: int
    ) -> None:
        self.scorer = scorer
        self.files: list[_File] = []
        self.vocab: dict[str, int] = {}
        window_file: list[int] = []
        window_start: list[int] = []
        windows: list[list[int]] = []  # term ids, repeats kept (BM25 counts them)
        seen: dict[str, list[int]] = {}  # term ids of a line's text: code repeats many lines
        for path, full_text in files:
            text = full_text[:MAX_FILE_CHARS]
            offsets = _line_offsets(text)
            file_id = len(self.files)
            self.files.append(_File(path, text, tuple(offsets)))
            lines = [self._line_ids(text[a:b], seen) for a, b in pairwise(offsets)]
            for start in _window_starts(len(lines), window_lines, stride):
                windows.append([t for line in lines[start : start + window_lines] for t in line])
                window_file.append(file_id)
                window_start.append(start)
        self.window_file = np.asarray(window_file, dtype=np.int32)
        self.window_start = np.asarray(window_start, dtype=np.int32)
        self.count = len(windows)
        self.file_ids = {f.path: i for i, f in enumerate(self.files)}
        # Posting lists of unique (term, window) pairs: Jaccard's intersections, BM25's df.
        lengths = np.asarray([len(ids) for ids in windows], dtype=np.int64)
        flat = np.fromiter((t for ids in windows for t in ids), np.int64, int(lengths.sum()))
        # np.unique's hashing is slower here than a sort and a comparison with the neighbour
        pairs = np.sort(flat * max(self.count, 1) + np.repeat(np.arange(self.count), lengths))
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
        terms = pairs // max(self.count, 1)
        self.postings = (pairs % max(self.count, 1)).astype(np.int32)
        self.bounds = np.searchsorted(terms, np.arange(len(self.vocab) + 1)).astype(np.int64)
        self.sizes = np.bincount(self.postings, minlength=self.count).astype(np.float32)
        self.average_length = float(lengths.mean()) if self.count else 1.0
        self.bm25 = None
        if scorer == "bm25" and self.count and self.vocab:
            import bm25s  # only the BM25 scorer pays for importing it (numpy's sparse code)

            # bm25s sets its own logger to DEBUG when imported: let it follow the application's
            logging.getLogger("bm25s").setLevel(logging.NOTSET)

            self.bm25 = bm25s.BM25(k1=_K1, b=_B, method="lucene")
            self.bm25.index(
                (windows, dict(self.vocab)), create_empty_token=False, show_progress=False
            )

    def _line_ids(self, line: str, seen: dict[str, list[int]]) -> list[int]:
        ids = seen.get(line)
        if ids is None:
            ids = seen[line] = [
                self.vocab.setdefault(t, len(self.vocab)) for t in _terms(line, self.scorer)
            ]
        return ids

    def document_frequency(self, term: str) -> int:
        term_id = self.vocab.get(term)
        return 0 if term_id is None else int(self.bounds[term_id + 1] - self.bounds[term_id])

    def idf(self, term: str) -> float:
        df = self.document_frequency(term)
        return math.log(1 + (self.count - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """The score of every window for the query's unique terms, 0..1."""
        ids = [self.vocab[t] for t in query if t in self.vocab]
        if not ids or not self.count:
            return np.zeros(self.count, dtype=np.float32)
        if self.scorer == "bm25":
            assert self.bm25 is not None, "a BM25 index has its score matrix"
            bound = sum(self.idf(t) for t in query)
            return np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32) / bound
        hits = np.concatenate([self.postings[self.bounds[i] : self.bounds[i + 1]] for i in ids])
        inter = np.bincount(hits, minlength=self.count).astype(np.float32)
        return inter / (len(query) + self.sizes - inter)

    def score_terms(self, query: Sequence[str], window: Sequence[str]) -> float:
        """One window's score, for a window not in the index, on the index's scale."""
        if self.scorer == "jaccard":
            return jaccard(frozenset(query), frozenset(window))
        if not query:
            return 0.0
        counts = Counter(window)
        norm = _K1 * (1 - _B + _B * len(window) / self.average_length)
        total = sum(self.idf(t) * counts[t] / (counts[t] + norm) for t in query if t in counts)
        return total / sum(self.idf(t) for t in query)


class WindowIndex:
    """Sliding windows over a set of files, searched by the code before a cursor."""

    def __init__(
        self,
        files: Iterable[tuple[str, str]],  # (path shown to the model, text)
        scorer: Scorer = "bm25",
        *,
        window_lines: int = WINDOW_LINES,
        stride: int = STRIDE,
    ) -> None:
        if scorer not in SCORERS:
            raise ValueError(f"unknown retrieval scorer {scorer!r}; allowed: {', '.join(SCORERS)}")
        assert 0 < stride <= window_lines, "windows must cover every line"
        self.scorer: Scorer = scorer
        self.window_lines = window_lines
        self.stride = stride
        by_family: dict[str, list[tuple[str, str]]] = {}
        for path, text in files:
            by_family.setdefault(family_of("", path), []).append((path, text))
        self._families = {
            family: _FamilyIndex(members, scorer, window_lines, stride)
            for family, members in by_family.items()
        }

    @property
    def file_count(self) -> int:
        return sum(len(f.files) for f in self._families.values())

    @property
    def window_count(self) -> int:
        return sum(f.count for f in self._families.values())

    def search(
        self,
        query_text: str,
        family: str,
        *,
        exclude_paths: Iterable[str] = (),
        fresh: Sequence[Document] = (),
        exclude_text: str = "",
        max_snippets: int = 4,
        min_score: float = 0.1,
    ) -> list[Snippet]:
        """The windows most similar to `query_text`, best first, of files of `family`.

        Leaves out the windows of `exclude_paths` (the current file) and of the `fresh`
        documents' paths; the `fresh` documents (open ones, whose indexed text may be stale)
        are scored from their current text instead, on the same scale. Skips windows whose
        lines mostly appear in `exclude_text` already (context.already_in) and windows
        overlapping a better one of the same file.
        """
        query = sorted(set(_terms(query_text, self.scorer)))
        index = self._families.get(family)
        if not query or (index is None and not fresh):
            return []
        if index is None:
            index = _FamilyIndex([], self.scorer, self.window_lines, self.stride)
        hidden = {*exclude_paths, *(d.path for d in fresh)}
        candidates = self._indexed(index, query, hidden, min_score)
        for document in fresh:
            if family_of(document.language_id, document.path) != family:
                continue
            windows = _fresh_windows(document.text, self.scorer, self.window_lines, self.stride)
            file = _File(document.path, document.text, tuple(_line_offsets(document.text)))
            for start, terms in windows:
                score = index.score_terms(query, terms)
                if score >= min_score:
                    candidates.append((score, file, start))
        candidates.sort(key=lambda c: (-c[0], c[1].path, c[2]))
        chosen: list[Snippet] = []
        for score, file, start in candidates:
            if len(chosen) >= max_snippets:
                break
            if any(
                c.path == file.path and abs(start - c.start_line) < self.window_lines
                for c in chosen
            ):
                continue
            text = file.lines(start, self.window_lines)
            if not text.strip() or (exclude_text and already_in(text, exclude_text)):
                continue
            chosen.append(Snippet(file.path, text, score, start))
        return chosen

    def _indexed(
        self, index: _FamilyIndex, query: Sequence[str], hidden: set[str], min_score: float
    ) -> list[tuple[float, _File, int]]:
        scores = index.scores(query)
        hidden_ids = [index.file_ids[p] for p in hidden if p in index.file_ids]
        if hidden_ids:
            scores[np.isin(index.window_file, hidden_ids)] = -1.0
        count = min(_CANDIDATES, index.count)
        if not count:
            return []
        best = np.argpartition(-scores, count - 1)[:count]
        return [
            (float(scores[w]), index.files[index.window_file[w]], int(index.window_start[w]))
            for w in best
            if scores[w] >= min_score
        ]
