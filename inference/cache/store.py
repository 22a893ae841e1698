"""`CompletionCache`: the exact and the pattern layer of the completion cache, and its counts.

- "exact": key = model fingerprint + generation settings + hash of the prompt token ids (see
  `keys`); value = the model's raw text for that prompt. Same model, same settings, same ids:
  same text.
- "pattern": key = an abstract pattern key (made by prompts.patterns, opaque here); value = up to
  MAX_CANDIDATES abstracted completions, the ones learned from the user's code first.

Counts are kept in memory and added to the totals on disk at most every FLUSH_INTERVAL_S (and at
close), so few lookups pay for a stats write; other servers on the same directory add theirs.
Every layer is a `CacheDatabase`, which turns database faults into misses.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import diskcache

from inference.cache.counters import LATENCY_SAMPLES, LAYERS, CacheCounters
from inference.cache.database import CacheDatabase, cache_dir, make_private_dir

log = logging.getLogger("flashcode.cache")

MAX_CANDIDATES = 4  # completions kept per pattern key
SOURCES = ("workspace", "model")  # where a pattern was learned; the user's own code ranks first
PATTERN_SHARE = 8  # the pattern layer gets 1/PATTERN_SHARE of the size budget
FLUSH_INTERVAL_S = 2.0  # counters are written at most this often (and at close)


class CompletionCache:
    """The exact and pattern layers and their statistics, in one directory."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        max_size_mb: int = 256,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = cache_dir(directory)
        self.max_size_bytes = max(1, max_size_mb) * 2**20
        self.warnings: list[str] = []
        self._on_warning = on_warning
        self._lock = threading.Lock()
        pattern_bytes = self.max_size_bytes // PATTERN_SHARE
        try:
            make_private_dir(self.directory)
        except OSError as exc:
            self._warn(f"flashcode cache: cannot create {self.directory} ({exc})")
        self.layers = {
            "exact": CacheDatabase(
                "exact", self.directory / "exact", self.max_size_bytes - pattern_bytes, self._warn
            ),
            "pattern": CacheDatabase(
                "pattern", self.directory / "pattern", pattern_bytes, self._warn
            ),
        }
        self._stats_layer = CacheDatabase("stats", self.directory / "stats", 2**20, self._warn)
        self.session = CacheCounters()  # this process's counts, for the server's stats
        self._pending = CacheCounters()  # not yet added to the totals on disk
        self._last_flush = time.monotonic()
        self._closed = False
        atexit.register(self.close)

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)
        if self._on_warning is not None:
            try:
                self._on_warning(message)
            except Exception:  # a warning channel that fails must not stop the cache
                log.exception("cache warning callback failed")

    # -- exact -----------------------------------------------------------------------------------
    def get_exact(self, key: str) -> str | None:
        with self.layers["exact"].guard() as cache:
            value = cache.get(key) if cache is not None else None
            return value if isinstance(value, str) else None
        return None

    def put_exact(self, key: str, text: str) -> None:
        with self.layers["exact"].guard(write=True) as cache:
            if cache is not None:
                cache.set(key, text)
                self._count(lambda c: setattr(c, "stored", c.stored + 1))

    # -- patterns ------------------------------------------------------------------------------
    def get_patterns(self, key: str) -> list[tuple[tuple[str, ...], str, str]]:
        """The completions stored under a pattern key as (lines, origin, source), best first."""
        with self.layers["pattern"].guard() as cache:
            raw = cache.get(key) if cache is not None else None
            return [(tuple(e["lines"]), e["origin"], e["source"]) for e in _decode_candidates(raw)]
        return []

    def add_patterns(self, examples: Iterable[tuple[str, Sequence[str], str]], source: str) -> int:
        """Store pattern completions (key, lines, origin); returns how many keys changed.

        `origin` is opaque here (the entity a completion was written for); see `_merged` for
        the order kept under one key.
        """
        assert source in SOURCES, f"source must be one of {SOURCES}, got {source!r}"
        examples = list(examples)
        added = 0
        with self.layers["pattern"].guard(write=True) as cache:
            if cache is None:
                return 0
            # Mining yields the same examples keystroke after keystroke; reading first keeps
            # those lookups off sqlite's write lock.
            if not any(
                _merged(cache.get(key), lines, origin, source) for key, lines, origin in examples
            ):
                return 0
            with cache.transact():
                for key, lines, origin in examples:
                    merged = _merged(cache.get(key), lines, origin, source)
                    if merged is not None:
                        cache.set(key, json.dumps(merged))
                        added += 1
        if added:
            self._count(lambda c: setattr(c, "learned", c.learned + added))
        return added

    # -- workspace files already mined --------------------------------------------------------
    def mined_files(self) -> dict[str, list[int]]:
        """{path: [mtime_ns, size]} of the workspace files whose patterns are stored. Kept in the
        pattern layer's directory, so a rebuilt pattern database starts with none."""
        try:
            data = json.loads(self._mined_files_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            path: stamp
            for path, stamp in data.items()
            if isinstance(stamp, list)
            and len(stamp) == 2
            and all(isinstance(v, int) for v in stamp)
        }

    def save_mined_files(self, files: dict[str, list[int]]) -> None:
        path = self._mined_files_path()
        if not path.parent.is_dir():
            return  # the pattern layer is off
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            # The list names the user's files: readable by the user only, like the databases.
            descriptor = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                out.write(json.dumps(files))
            os.replace(temporary, path)
        except OSError as exc:  # the next start mines those files again: nothing is lost
            log.debug("could not save the mined-files list: %s", exc)

    def _mined_files_path(self) -> Path:
        return self.layers["pattern"].directory / "workspace-files.json"

    # -- statistics ----------------------------------------------------------------------------
    def record(self, layer: str, hit: bool, latency_ms: float | None = None) -> None:
        """Count one lookup of `layer`; a hit's latency (ms, lookup to answer) is kept."""
        assert layer in LAYERS, f"layer must be one of {LAYERS}, got {layer!r}"

        def count(counters: CacheCounters) -> None:
            (counters.hits if hit else counters.misses)[layer] += 1
            if hit and latency_ms is not None:
                counters.latencies.append(latency_ms)
                del counters.latencies[:-LATENCY_SAMPLES]

        self._count(count)

    def record_rejected(self, count: int = 1) -> None:
        self._count(lambda c: setattr(c, "rejected", c.rejected + count))

    def _count(self, update: Callable[[CacheCounters], None]) -> None:
        with self._lock:
            update(self.session)
            update(self._pending)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _read_totals(self, cache: diskcache.Cache) -> CacheCounters:
        raw = cache.get("totals")
        try:
            return CacheCounters.from_json(json.loads(raw) if isinstance(raw, str) else None)
        except (ValueError, TypeError, AttributeError):
            return CacheCounters()

    def flush(self) -> None:
        """Add this process's counts to the totals on disk (other servers add theirs too)."""
        with self._lock:
            pending, self._pending = self._pending, CacheCounters()
            self._last_flush = time.monotonic()
        with self._stats_layer.guard(write=True) as cache:
            if cache is None:
                return
            with cache.transact():
                totals = self._read_totals(cache)
                totals.add(pending)
                cache.set("totals", json.dumps(totals.to_json()))

    def totals(self) -> CacheCounters:
        with self._stats_layer.guard() as cache:
            totals = self._read_totals(cache) if cache is not None else CacheCounters()
            with self._lock:
                totals.add(self._pending)
            return totals
        return CacheCounters()

    def stats(self) -> dict[str, Any]:
        """JSON-able statistics: this session's counts, all-time totals, entries and size."""
        with self._lock:
            session = CacheCounters.from_json(self.session.to_json())
        exact, pattern = self.layers["exact"], self.layers["pattern"]
        return {
            "directory": str(self.directory),
            "entries": {"exact": exact.entries(), "pattern": pattern.entries()},
            "sizeBytes": exact.volume() + pattern.volume(),
            "maxSizeBytes": self.max_size_bytes,
            "session": session.summary(),
            "total": self.totals().summary(),
            "recoveries": sum(layer.recoveries for layer in (exact, pattern, self._stats_layer)),
            "warnings": self.warnings[-5:],
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.flush()
        for layer in (*self.layers.values(), self._stats_layer):
            layer.close()
        atexit.unregister(self.close)


def _merged(
    raw: Any, lines: Sequence[str], origin: str, source: str
) -> list[dict[str, Any]] | None:
    """The candidates stored under a key once this completion is added, or None if unchanged.

    What the user wrote at such a place replaces what the model guessed: workspace completions
    go first, newest first; the model's go after and never repeat one already there.
    """
    entry = {"source": source, "lines": list(lines), "origin": origin}
    current = _decode_candidates(raw)
    if source == "workspace":
        kept = [c for c in current if c["source"] == "workspace"]
        merged = [entry, *(c for c in kept if c["lines"] != entry["lines"])]
    elif any(c["lines"] == entry["lines"] for c in current):
        return None
    else:
        kept = [c for c in current if c["source"] == "workspace"]
        merged = [*kept, entry, *(c for c in current if c not in kept)]
    merged = merged[:MAX_CANDIDATES]
    return None if merged == current else merged


def _decode_candidates(raw: object) -> list[dict[str, Any]]:
    if not isinstance(raw, str):
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    return [
        entry
        for entry in data
        if isinstance(entry, dict)
        and entry.get("source") in SOURCES
        and isinstance(entry.get("origin"), str)
        and isinstance(entry.get("lines"), list)
        and all(isinstance(line, str) for line in entry["lines"])
    ]
