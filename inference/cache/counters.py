"""Hit, miss and latency counts of the cache layers, their JSON form and their summary.

A lookup ends at a pattern hit or goes on to the exact layer, so the hit rate is over lookups,
not over layer visits. Only the most recent hit latencies are kept: enough for percentiles,
bounded in memory and on disk.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LAYERS = ("exact", "pattern")
LATENCY_SAMPLES = 500  # recent hit latencies kept for percentiles


@dataclass
class CacheCounters:
    """Counts since the last flush (deltas), or totals as read back from disk."""

    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    rejected: int = 0  # pattern candidates found but not accepted (did not parse, unknown names)
    learned: int = 0  # pattern completions stored
    stored: int = 0  # exact completions stored
    latencies: list[float] = field(default_factory=list)  # hit latencies, ms

    def add(self, other: CacheCounters) -> None:
        for layer in LAYERS:
            self.hits[layer] += other.hits[layer]
            self.misses[layer] += other.misses[layer]
        self.rejected += other.rejected
        self.learned += other.learned
        self.stored += other.stored
        self.latencies = (self.latencies + other.latencies)[-LATENCY_SAMPLES:]

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "rejected": self.rejected,
            "learned": self.learned,
            "stored": self.stored,
            "latencies": self.latencies,
        }

    @classmethod
    def from_json(cls, data: Any) -> CacheCounters:
        counters = cls()
        if not isinstance(data, dict):
            return counters
        for layer in LAYERS:
            counters.hits[layer] = int(data.get("hits", {}).get(layer, 0))
            counters.misses[layer] = int(data.get("misses", {}).get(layer, 0))
        counters.rejected = int(data.get("rejected", 0))
        counters.learned = int(data.get("learned", 0))
        counters.stored = int(data.get("stored", 0))
        counters.latencies = [float(v) for v in data.get("latencies", [])][-LATENCY_SAMPLES:]
        return counters

    def summary(self) -> dict[str, Any]:
        hits = sum(self.hits.values())
        # A lookup ends at a pattern hit, or goes on to the exact layer (which files without a
        # grammar reach directly): each is counted once.
        lookups = self.hits["pattern"] + self.hits["exact"] + self.misses["exact"]
        result: dict[str, Any] = {
            layer: {"hits": self.hits[layer], "misses": self.misses[layer]} for layer in LAYERS
        }
        result["pattern"]["rejected"] = self.rejected
        result["pattern"]["learned"] = self.learned
        result["exact"]["stored"] = self.stored
        result["lookups"] = lookups
        result["hitRate"] = round(hits / lookups, 4) if lookups else 0.0
        result["hitLatencyMs"] = _latency_summary(self.latencies)
        return result


def _latency_summary(samples: Sequence[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }
