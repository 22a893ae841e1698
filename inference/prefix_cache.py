"""The prefix cache: KV snapshots of earlier prompts, so a new prompt only computes what differs.

An LRU bounded in bytes. A lookup compares the new prompt with every stored one (numpy, a few
entries of a few thousand tokens: microseconds), and an entry that is a prefix of a newer one is
superseded by it, so typing along a line keeps one entry, not one per keystroke.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from inference.kv_device import KVSnapshot


class PrefixCache:
    """LRU of prompt KV snapshots, bounded in bytes; finds the longest common token prefix."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[tuple[int, ...], tuple[np.ndarray, KVSnapshot]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[KVSnapshot, int] | None:
        """The entry sharing the longest prefix with `tokens` and that length (at most `limit`)."""
        query = np.asarray(tokens, np.int64)
        best: tuple[tuple[int, ...], int] | None = None
        for key, (stored, _) in self._entries.items():
            size = min(len(stored), len(query), limit)
            differ = np.flatnonzero(stored[:size] != query[:size])
            common = int(differ[0]) if differ.size else size
            if common > 0 and (best is None or common > best[1]):
                best = (key, common)
        if best is None:
            self.misses += 1
            return None
        key, common = best
        self._entries.move_to_end(key)
        self.hits += 1
        self.reused_tokens += common
        return self._entries[key][1], common

    def covers(self, tokens: tuple[int, ...]) -> bool:
        """Whether an entry already holds all of `tokens` (so storing them adds nothing)."""
        query = np.asarray(tokens, np.int64)
        return any(
            len(stored) >= len(query) and np.array_equal(stored[: len(query)], query)
            for stored, _ in self._entries.values()
        )

    def store(self, tokens: tuple[int, ...], snapshot: KVSnapshot) -> None:
        if snapshot.nbytes > self.capacity_bytes:
            return
        query = np.asarray(tokens, np.int64)
        # an entry whose tokens are a prefix of the new one is superseded by it
        for key in [k for k, (s, _) in self._entries.items() if np.array_equal(s, query[: len(s)])]:
            self.bytes -= self._entries.pop(key)[1].nbytes
        self._entries[tokens] = (query, snapshot)
        self.bytes += snapshot.nbytes
        while self.bytes > self.capacity_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted.nbytes
