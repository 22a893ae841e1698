"""The user's own code as a next-token distribution: longest suffix matches over token arrays.

A `TokenSuffixIndex` holds documents as one token array, each followed by a separator, with a
suffix array over it (pydivsufsort, a C library: about 0.2 s per million tokens). The query is
the one infini-gram answers: the longest suffix of the tokens just written that occurs in the
index, and which tokens followed it there. `NgramMixer` turns that into a distribution and
interpolates it with the model's at each decode step (a cache n-gram, as in kNN-LM and
infini-gram), with a weight that grows with the match length and its agreement, and with the
model's own uncertainty.

Trade-offs:
- Comparisons are of big-endian bytes: two tokens per byte pair compare as the ids do, so
  `bisect` over the suffix array with a `bytes` key is a C comparison, not a Python loop. A
  query costs a few hundred microseconds, far under a decode step.
- Continuations are read from at most `SAMPLE` occurrences, spread over the match range: a
  short, frequent match is ambiguous anyway, and its weight comes out small.
- Documents that changed since the index was built are *masked* (`dead`), not removed: their
  occurrences stop counting, and the suffix array stays valid until the next rebuild.
- While token healing forces the first tokens, only continuations that can write the forced
  text count (`allowed`), and the match may be shorter for it: after `def user_appli` what
  followed the context elsewhere is mostly other words, and a sample of those would say nothing.
  The model's distribution is not renormalized to the allowed tokens (measured: its pick among
  them then outweighed the project's code).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

SAMPLE = 64  # occurrences read to estimate the continuation of one match
MAX_MATCH = 48  # longest suffix searched for, in tokens
# Allowed next tokens (a forced text) up to this many are counted one by one; a larger set
# (a forced text of one or two characters) is common enough for the sample to find.
ALLOWED_SEARCHED = 64

_Found = TypeVar("_Found")


def _suffix_array(data: bytes, width: int) -> np.ndarray:
    """Token positions in suffix order, from the big-endian token bytes (`width` bytes a token).

    libdivsufsort sorts bytes: every byte offset gets a row, and only those at a token's start
    are kept. pydivsufsort's own wrapper does the same through temporaries three times that
    size; filtering in place and shrinking keeps the peak at the one int32 row per byte.
    """
    count = len(data) // width
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    assert len(data) < 2**31, "over 2 GB of tokens: more than any workspace budget allows"
    import ctypes

    from pydivsufsort.dll import libdivsufsort

    rows = np.empty(len(data), dtype=np.int32)
    # A ctypes call: the GIL is released while it sorts, so the event loop keeps serving.
    pointer = rows.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    if libdivsufsort.divsufsort(data, pointer, ctypes.c_int32(len(data))) != 0:
        raise RuntimeError("libdivsufsort failed")
    kept, chunk = 0, 1 << 20
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        starts = part[part % width == 0] // width
        rows[kept : kept + len(starts)] = starts
        kept += len(starts)
    assert kept == count, "every token start has its suffix-array row"
    rows.resize(count, refcheck=False)  # realloc shrinks in place: no second copy
    return rows


@dataclass(frozen=True)
class Match:
    """The longest suffix of a context found in an index, and what followed it there."""

    length: int  # tokens of the context matched
    counts: dict[int, int]  # next token -> occurrences (from at most SAMPLE of them)
    occurrences: int  # all occurrences of the matched suffix
    rows: tuple[int, int] = (0, 0)  # its suffix-array rows in the index searched


class TokenSuffixIndex:
    """Documents of token ids, searchable for the longest occurrence of a context's suffix."""

    def __init__(
        self, tokens: np.ndarray, separator: int, suffix_array: np.ndarray | None = None
    ) -> None:
        wide = separator > 0xFFFF or (tokens.size and int(tokens.max()) > 0xFFFF)
        data = np.asarray(tokens, dtype=np.dtype(">u4" if wide else ">u2")).tobytes()
        self._setup(data, 4 if wide else 2, separator, suffix_array)

    @classmethod
    def from_token_bytes(
        cls, data: bytes, separator: int, suffix_array: np.ndarray | None = None
    ) -> TokenSuffixIndex:
        """An index over ids already laid out as big-endian bytes, two a token (four when the
        separator is above 0xFFFF), taken as they are: a caller that built them can let its
        own copy go before the suffix array is sorted."""
        index = cls.__new__(cls)
        index._setup(data, 4 if separator > 0xFFFF else 2, separator, suffix_array)
        return index

    def _setup(
        self, data: bytes, width: int, separator: int, suffix_array: np.ndarray | None
    ) -> None:
        assert len(data) % width == 0, "the token bytes hold whole tokens"
        self.separator = separator
        self._dtype = np.dtype(">u4" if width == 4 else ">u2")
        self._width = width
        self._bytes = data
        # The ids are read from the comparison bytes: one copy of the tokens, not two.
        self.tokens = np.frombuffer(self._bytes, dtype=self._dtype)
        self.suffix_array = (
            _suffix_array(self._bytes, self._width)
            if suffix_array is None
            else np.asarray(suffix_array)
        )
        # bisect reads rows through a memoryview: Python ints on demand, not a list of them
        # (36 bytes a token). A memory-mapped array from disk works as well.
        self._sa_rows = self.suffix_array.data
        self.dead = np.zeros(len(self.tokens), dtype=bool)

    @classmethod
    def from_documents(
        cls, documents: Sequence[Sequence[int] | np.ndarray], separator: int
    ) -> TokenSuffixIndex:
        parts: list[np.ndarray] = []
        for doc in documents:
            parts.append(np.asarray(doc, dtype=np.int64))
            parts.append(np.array([separator], dtype=np.int64))
        tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return cls(tokens, separator)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        return len(self._bytes) + self.suffix_array.nbytes + self.dead.nbytes

    def kill(self, start: int, end: int) -> None:
        """Stop counting the occurrences that start in tokens [start, end) (a changed file)."""
        self.dead[start:end] = True

    def _range(self, query: bytes, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        """Suffix-array rows [lo, hi) of the suffixes that start with `query`, searched within
        the given rows (a longer query's rows lie within a shorter one's)."""
        width = len(query)
        data = self._bytes
        w = self._width

        def key(position: int) -> bytes:
            return data[position * w : position * w + width]

        end = len(self.suffix_array) if hi is None else hi
        lo = bisect.bisect_left(self._sa_rows, query, lo=lo, hi=end, key=key)
        hi = bisect.bisect_right(self._sa_rows, query, lo=lo, hi=end, key=key)
        return lo, hi

    def _continuations(
        self, lo: int, hi: int, length: int, skip: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Where the next token is after up to SAMPLE live occurrences in suffix-array rows
        [lo, hi), none of them starting in tokens [skip[0], skip[1]) nor followed by the end of
        their document."""
        if hi - lo > SAMPLE:
            rows = np.linspace(lo, hi - 1, SAMPLE).astype(np.int64)
            positions = self.suffix_array[rows]
        else:
            positions = self.suffix_array[lo:hi]
        positions = positions[~self.dead[positions]]
        if skip is not None:
            positions = positions[(positions < skip[0]) | (positions >= skip[1])]
        after = positions + length
        after = after[after < len(self.tokens)]
        return after[self.tokens[after] != self.separator]

    def longest_match(
        self,
        context: Sequence[int],
        max_length: int = MAX_MATCH,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
        allowed: np.ndarray | None = None,
        within: tuple[int, int] | None = None,
    ) -> Match | None:
        """The longest suffix of `context` (up to `max_length`) that occurs with a continuation,
        occurrences starting in tokens [skip[0], skip[1]) left out. `at_most` (when > 0) is a
        known bound, the previous step's length plus one: tried first, it is usually the answer,
        and one range search replaces a bisection; `within`, the previous match's rows, narrows
        that search to them (the longer suffix's rows lie inside the shorter one's). With
        `allowed` (token ids), only continuations among them count: the answer must write a
        forced text (token healing), and what followed the context elsewhere is only evidence
        where it agrees."""
        if allowed is not None and allowed.size <= ALLOWED_SEARCHED:
            return self._longest_allowed(context, max_length, skip, at_most, allowed)
        found = self._longest(context, max_length, skip, at_most, within)
        if found is None:
            return None
        length, after, occurrences, rows = found
        following = self.tokens[after].tolist()
        if allowed is not None:
            permitted = set(allowed.tolist())
            following = [token for token in following if token in permitted]
            if not following:
                return None
        return Match(length, dict(Counter(following)), occurrences, rows)

    def _longest_allowed(
        self,
        context: Sequence[int],
        max_length: int,
        skip: tuple[int, int] | None,
        at_most: int,
        allowed: np.ndarray,
    ) -> Match | None:
        """`longest_match` kept to a few allowed next tokens: the longest suffix followed by one
        of them. Each one's occurrences after a suffix are one sub-range of the suffix's rows,
        so they are counted exactly (the live share estimated from a sample), however common
        the suffix is: a sample of the whole range would miss a rare allowed word after a
        common indentation."""
        encoded = self._tail_bytes(context, max_length)
        if encoded is None:
            return None
        w = self._width
        nexts = [
            (int(t), int(t).to_bytes(w, "big")) for t in allowed.tolist() if t != self.separator
        ]

        def probe(length: int) -> Match | None:
            query = encoded[len(encoded) - length * w :]
            lo, hi = self._range(query)
            if hi <= lo:
                return None
            counts: dict[int, int] = {}
            for token, suffix in nexts:
                t_lo, t_hi = self._range(query + suffix, lo, hi)
                if t_hi > t_lo and (live := self._live_share(t_lo, t_hi, skip)) > 0.0:
                    counts[token] = max(1, round(live * (t_hi - t_lo)))
            return Match(length, counts, hi - lo, (lo, hi)) if counts else None

        return self._bisect_length(len(encoded) // w, at_most, probe)

    def _live_share(self, lo: int, hi: int, skip: tuple[int, int] | None) -> float:
        """The share of suffix-array rows [lo, hi) (sampled) not masked and not in `skip`."""
        if hi - lo > SAMPLE // 4:
            positions = self.suffix_array[np.linspace(lo, hi - 1, SAMPLE // 4).astype(np.int64)]
        else:
            positions = self.suffix_array[lo:hi]
        keep = ~self.dead[positions]
        if skip is not None:
            keep &= (positions < skip[0]) | (positions >= skip[1])
        return float(keep.mean())

    def draft(
        self,
        context: Sequence[int],
        count: int,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
    ) -> tuple[int, list[int]]:
        """(match length, up to `count` tokens that followed it): the longest suffix of
        `context` found here, continued as one occurrence with the most common next token
        went on, up to the end of its document. (0, []) when nothing matches."""
        found = self._longest(context, MAX_MATCH, skip, at_most)
        if found is None:
            return 0, []
        length, after, _, _ = found
        following = self.tokens[after]
        values, counts = np.unique(following, return_counts=True)
        start = int(after[int(np.flatnonzero(following == values[int(np.argmax(counts))])[0])])
        tokens = self.tokens[start : start + count]
        ends = np.flatnonzero(tokens == self.separator)
        return length, tokens[: int(ends[0]) if ends.size else len(tokens)].tolist()

    def _longest(
        self,
        context: Sequence[int],
        max_length: int,
        skip: tuple[int, int] | None,
        at_most: int,
        within: tuple[int, int] | None = None,
    ) -> tuple[int, np.ndarray, int, tuple[int, int]] | None:
        """(length, where the sampled continuations are, occurrences, rows) of the longest
        match."""
        encoded = self._tail_bytes(context, max_length)
        if encoded is None:
            return None
        w = self._width
        narrow = within if within is not None and at_most > 0 else (0, len(self.suffix_array))

        def probe(length: int) -> tuple[int, np.ndarray, int, tuple[int, int]] | None:
            bounds = narrow if length == at_most else (0, len(self.suffix_array))
            lo, hi = self._range(encoded[len(encoded) - length * w :], *bounds)
            after = self._continuations(lo, hi, length, skip) if hi > lo else None
            if after is None or not after.size:
                return None
            return (length, after, hi - lo, (lo, hi))

        return self._bisect_length(len(encoded) // w, at_most, probe)

    def _tail_bytes(self, context: Sequence[int], max_length: int) -> bytes | None:
        """The comparison bytes of the context's last tokens, from after its last separator."""
        if not len(self.tokens) or not context:
            return None
        tail = np.asarray(context[-max_length:], dtype=np.int64)
        if (tail == self.separator).any():
            tail = tail[int(np.flatnonzero(tail == self.separator)[-1]) + 1 :]
        return tail.astype(self._dtype).tobytes() if tail.size else None

    @staticmethod
    def _bisect_length(
        longest: int, at_most: int, probe: Callable[[int], _Found | None]
    ) -> _Found | None:
        """The longest length (1..longest) whose probe finds something. Having a live
        continuation is monotone in the length (an occurrence of a longer suffix contains one of
        each shorter one, with the same next token), so the lengths are bisected; a known bound
        `at_most` is tried first."""
        best: _Found | None = None
        low, high = 1, longest if at_most <= 0 else min(longest, at_most)
        first = True
        while low <= high:
            length = high if first and at_most > 0 else (low + high) // 2
            first = False
            found = probe(length)
            if found is not None:
                best = found
                low = length + 1
            else:
                high = length - 1
        return best


class NgramSource(Protocol):
    def longest_match(
        self,
        context: Sequence[int],
        max_length: int = MAX_MATCH,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
        allowed: np.ndarray | None = None,
        within: tuple[int, int] | None = None,
    ) -> Match | None: ...


@dataclass(frozen=True)
class Without:
    """An index less one document's tokens [start, end): the current buffer, which the workspace
    index holds whole but which must be searched split at the cursor (its own source)."""

    index: TokenSuffixIndex
    start: int
    end: int

    def longest_match(
        self,
        context: Sequence[int],
        max_length: int = MAX_MATCH,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
        allowed: np.ndarray | None = None,
        within: tuple[int, int] | None = None,
    ) -> Match | None:
        return self.index.longest_match(
            context, max_length, (self.start, self.end), at_most, allowed, within
        )

    def draft(
        self,
        context: Sequence[int],
        count: int,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
    ) -> tuple[int, list[int]]:
        return self.index.draft(context, count, (self.start, self.end), at_most)


@dataclass(frozen=True)
class MixingWeights:
    """How much a match may move the model: a long, unambiguous match from the user's own code
    wins; a short or ambiguous one barely counts; a sure model is moved less than an unsure one."""

    # Chosen on projects that are neither trained nor evaluated on (attrs, pathspec, bm25s: 120
    # holes); a small model's confidence is a weak signal, so even a sure model is moved.
    max_weight: float = 0.97
    min_length: int = 2  # matches this short carry no weight
    full_length: int = 8  # matches this long carry all of it
    sure_entropy: float = 0.0  # nats: a model this sure keeps three quarters of the weight away
    unsure_entropy: float = 1.5  # nats: a model this unsure gives the match all of it

    def weight(self, match: Match, entropy: float) -> float:
        span = max(self.full_length - self.min_length, 1)
        length_term = min(max((match.length - self.min_length) / span, 0.0), 1.0)
        if length_term == 0.0:
            return 0.0
        total = sum(match.counts.values())
        purity = max(match.counts.values()) / total
        spread = max(self.unsure_entropy - self.sure_entropy, 1e-6)
        unsure = min(max((entropy - self.sure_entropy) / spread, 0.0), 1.0)
        return self.max_weight * length_term * purity * (0.25 + 0.75 * unsure)


@dataclass
class NgramMixer:
    """One request's view of its sources (current buffer first, then open documents, then the
    workspace index) and the tokens just before the cursor; updated as tokens are accepted."""

    sources: tuple[NgramSource, ...]
    context: list[int]
    weights: MixingWeights = field(default_factory=MixingWeights)
    mixed_steps: int = 0  # steps where the match moved the distribution
    # Per source, the match the last search found (None: nothing) and how many tokens came
    # since: after exactly one, the next longest match is at most one longer (`at_most`) and
    # lies inside the last one's rows (`within`).
    _found: list[Match | None] = field(default_factory=list)
    _grown: int = 0

    def best_match(self, allowed: np.ndarray | None = None) -> Match | None:
        """The longest match over the sources (continued by one of `allowed`, when given); an
        earlier source wins a tie."""
        best: Match | None = None
        known = self._grown == 1 and len(self._found) == len(self.sources)
        found_now: list[Match | None] = []
        for i, source in enumerate(self.sources):
            last = self._found[i] if known else None
            bound = (last.length + 1 if last is not None else 1) if known else 0
            found = source.longest_match(
                self.context,
                at_most=bound,
                allowed=allowed,
                within=last.rows if last is not None and allowed is None else None,
            )
            found_now.append(found)
            if found is not None and (best is None or found.length > best.length):
                best = found
        # A match found under `allowed` bounds nothing: the next step searches from scratch.
        self._found, self._grown = (found_now if allowed is None else []), 0
        return best

    def accept(self, token: int) -> None:
        self._grown += 1
        self.context.append(token)
        if len(self.context) > 4 * MAX_MATCH:
            del self.context[:-MAX_MATCH]

    def mix(self, logits: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
        """Logits of the interpolated distribution; the input when no match counts. With
        `allowed` (the tokens a forced text permits), only matches continued by one of them
        count; the sampler keeps to them afterwards."""
        match = self.best_match(allowed)
        if match is None or match.length <= self.weights.min_length:
            return logits  # carries no weight: the softmax below is not worth its cost
        # One exp over the vocabulary, no log: the entropy is log Z - E[shifted], and every
        # token the match does not name keeps its logit less one constant.
        shifted = logits.astype(np.float32) - np.float32(np.max(logits))
        np.maximum(shifted, np.float32(-1e4), out=shifted)  # a banned -inf would make 0 * inf
        exps = np.exp(shifted)
        total_exp = float(exps.sum())
        # Over the whole vocabulary, also under a forced text: the mass the model puts outside
        # the allowed tokens vanishes when the sampler keeps to them, so the match's mass, all
        # on allowed tokens, counts for more there. Renormalizing the model to the allowed
        # tokens first was measured: a small model's pick among them (often the exact typed
        # piece, which splits a word as no training text did) then outweighed the user's code.
        entropy = math.log(total_exp) - float(np.dot(exps, shifted)) / total_exp
        weight = self.weights.weight(match, entropy)
        if weight <= 0.0:
            return logits
        # log((1 - w) p_i) for the tokens the match does not name...
        mixed = shifted + np.float32(math.log1p(-weight) - math.log(total_exp))
        total = sum(match.counts.values())
        for token, count in match.counts.items():
            if token < len(mixed):  # ...and log((1 - w) p_i + w c_i / total) for those it does
                p = float(exps[token]) / total_exp
                mixed[token] = math.log((1.0 - weight) * p + weight * count / total)
        self.mixed_steps += 1
        return mixed.astype(logits.dtype, copy=False)
