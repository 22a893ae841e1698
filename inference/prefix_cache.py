"""The prefix cache: KV snapshots of earlier prompts, so a new prompt only computes what differs.

An LRU bounded in bytes. A lookup compares the new prompt with every stored one (numpy, a few
entries of a few thousand tokens: microseconds), and an entry that is a prefix of a newer one is
superseded by it, so typing along a line keeps one entry, not one per keystroke.

Several engines may share one `PrefixBudget` (a model's int4 and int8 variants, a flash and a pro
model): the bound is then on their sum, and the entry used least recently among all of them goes
first. Each engine's model thread touches its own cache, and eviction reaches into the others', so
one lock per budget guards them all; every operation under it is a few numpy comparisons.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.kv_device import KVSnapshot


class PrefixBudget:
    """The bytes that the prefix caches sharing it may hold together."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self.lock = threading.Lock()
        self.caches: list[PrefixCache] = []
        self._clock = itertools.count()

    @property
    def bytes(self) -> int:
        return sum(cache.bytes for cache in self.caches)

    def tick(self) -> int:
        """A use's place in time, comparable across the caches of this budget."""
        return next(self._clock)

    def make_room(self) -> None:
        """Evict the least recently used entries of any cache until the sum fits (lock held)."""
        total = self.bytes
        while total > self.capacity_bytes:
            oldest = min(
                (cache for cache in self.caches if cache._entries),
                key=lambda cache: next(iter(cache._entries.values())).used,
            )
            total -= oldest._evict_oldest()


@dataclass
class _Entry:
    tokens: np.ndarray  # (length,) int64, the prompt the snapshot holds
    snapshot: KVSnapshot
    used: int  # the budget's tick at the last store or hit


class PrefixCache:
    """LRU of prompt KV snapshots, bounded in bytes; finds the longest common token prefix."""

    def __init__(self, capacity_bytes: int, budget: PrefixBudget | None = None) -> None:
        self.budget = budget if budget is not None else PrefixBudget(capacity_bytes)
        self.budget.caches.append(self)
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0

    @property
    def capacity_bytes(self) -> int:
        return self.budget.capacity_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self),
            "bytes": self.bytes,
            "capacity_bytes": self.capacity_bytes,  # the bound of the budget it shares
            "shared_by": len(self.budget.caches),  # engines whose caches share that bound
            "hits": self.hits,
            "misses": self.misses,
            "reused_tokens": self.reused_tokens,
        }

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[KVSnapshot, int] | None:
        """The entry sharing the longest prefix with `tokens` and that length (at most `limit`)."""
        query = np.asarray(tokens, np.int64)
        with self.budget.lock:
            best: tuple[tuple[int, ...], int] | None = None
            for key, entry in self._entries.items():
                size = min(len(entry.tokens), len(query), limit)
                differ = np.flatnonzero(entry.tokens[:size] != query[:size])
                common = int(differ[0]) if differ.size else size
                if common > 0 and (best is None or common > best[1]):
                    best = (key, common)
            if best is None:
                self.misses += 1
                return None
            key, common = best
            self._entries.move_to_end(key)
            entry = self._entries[key]
            entry.used = self.budget.tick()
            self.hits += 1
            self.reused_tokens += common
            return entry.snapshot, common

    def covers(self, tokens: tuple[int, ...]) -> bool:
        """Whether an entry already holds all of `tokens` (so storing them adds nothing)."""
        query = np.asarray(tokens, np.int64)
        with self.budget.lock:
            return any(
                len(entry.tokens) >= len(query)
                and np.array_equal(entry.tokens[: len(query)], query)
                for entry in self._entries.values()
            )

    def store(self, tokens: tuple[int, ...], snapshot: KVSnapshot) -> None:
        if snapshot.nbytes > self.capacity_bytes:
            return
        query = np.asarray(tokens, np.int64)
        with self.budget.lock:
            # an entry whose tokens are a prefix of the new one is superseded by it
            superseded = [
                key
                for key, entry in self._entries.items()
                if np.array_equal(entry.tokens, query[: len(entry.tokens)])
            ]
            for key in superseded:
                self.bytes -= self._entries.pop(key).snapshot.nbytes
            self._entries[tokens] = _Entry(query, snapshot, self.budget.tick())
            self.bytes += snapshot.nbytes
            self.budget.make_room()

    def _evict_oldest(self) -> int:
        """Drop this cache's least recently used entry (budget lock held); its size."""
        _, entry = self._entries.popitem(last=False)
        self.bytes -= entry.snapshot.nbytes
        return entry.snapshot.nbytes
