"""Choosing the next token (greedy, temperature + top-p) and turning tokens into text with stops."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class Sampler:
    """Next-token choice for one request. temperature 0 is greedy (argmax)."""

    def __init__(
        self, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_p = top_p
        self.greedy = temperature == 0
        self._rng = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        if self.greedy:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self.temperature
        scaled -= scaled.max()
        probs = np.exp(scaled)
        probs /= probs.sum()
        if self.top_p < 1:
            order = np.argsort(probs)[::-1]
            cumulative = np.cumsum(probs[order])
            # the smallest set of most likely tokens whose mass reaches top_p
            keep = order[: int(np.searchsorted(cumulative, self.top_p)) + 1]
            kept = probs[keep]
            return int(keep[self._rng.choice(len(keep), p=kept / kept.sum())])
        return int(self._rng.choice(len(probs), p=probs))


class TextTracker:
    """Incremental detokenization with stop strings.

    `text` grows by whole characters only: a byte-level token can end inside a UTF-8 character,
    which then waits for the token that completes it. A stop string is found even when it spans
    tokens, and the text is cut before it.
    """

    def __init__(
        self, decode: Callable[[Sequence[int]], str], stop_strings: Sequence[str] = ()
    ) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stop_strings if s)
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the window decoded for context
        self._read_offset = 0  # ids before this are already in `text`
        self.text = ""
        self.stopped = False

    def push(self, token: int) -> bool:
        """Add one generated token; True once a stop string has appeared (text is cut before it)."""
        if self.stopped:
            return True
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix_offset : self._read_offset])
        after = self._decode(self._ids[self._prefix_offset :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return False  # an unfinished character: wait for the next token
        searched_from = max(0, len(self.text) - max((len(s) for s in self._stops), default=0))
        self.text += after[len(before) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        for stop in self._stops:
            index = self.text.find(stop, searched_from)
            if index >= 0:
                self.text = self.text[:index]
                self.stopped = True
        return self.stopped
