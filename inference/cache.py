"""The disk cache of completions: exact prompts and CRUD patterns, with hit statistics.

Two layers, each a diskcache (SQLite) database in its own subdirectory of one cache directory:

- "exact": key = model fingerprint + generation settings + hash of the prompt token ids; value =
  the model's raw text for that prompt. Same model, same settings, same ids: same text.
- "pattern": key = an abstract pattern key (made by prompts.patterns, opaque here); value = up to
  MAX_CANDIDATES abstracted completions, the ones learned from the user's code first.

A third small database keeps the hit/miss counters across restarts, so `flashcode stats` can read
them without a server. The directory is the user's cache directory (platformdirs) unless a setting
names another; it is made readable by the user only (0700, files 0600), because completions quote
the user's code.

Nothing here may stop a completion: a database that is corrupt or stays locked is moved aside
(`<layer>.broken-<time>`) and rebuilt, with a warning; if even that fails, the layer answers
misses. Sizes are bounded with diskcache's size limit, least recently stored entries going first
(a hit does not write, which keeps hits fast).
"""

from __future__ import annotations

import atexit
import contextlib
import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import statistics
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
import platformdirs

if TYPE_CHECKING:
    from inference.scheduler import GenerationRequest

log = logging.getLogger("flashcode.cache")

CACHE_FORMAT = 1  # part of every exact key: a format change must not reuse old entries
LAYERS = ("exact", "pattern")
MAX_CANDIDATES = 4  # completions kept per pattern key
SOURCES = ("workspace", "model")  # where a pattern was learned; the user's own code ranks first
PATTERN_SHARE = 8  # the pattern layer gets 1/PATTERN_SHARE of the size budget
LOCK_TIMEOUT_S = 0.25  # how long one operation waits for another process's write lock
OPEN_LOCK_TIMEOUT_S = 1.0  # opening waits longer: a database is not given up on lightly
LOCKED_STRIKES = 3  # consecutive lock timeouts before a database is taken as stuck
FLUSH_INTERVAL_S = 2.0  # counters are written at most this often (and at close)
LATENCY_SAMPLES = 500  # recent hit latencies kept for percentiles
KEEP_BROKEN = 2  # moved-aside copies kept per layer, newest first
_DATABASE_ERRORS = (sqlite3.Error, diskcache.Timeout, OSError)


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("flashcode")) / "completions"


def cache_dir(directory: str | os.PathLike[str] | None) -> Path:
    """The cache directory for a setting value ("" or None = the user cache directory)."""
    return Path(directory).expanduser() if directory else default_cache_dir()


def exact_key(fingerprint: str, request: GenerationRequest) -> str | None:
    """The exact-cache key of a request, or None when its answer is not reproducible.

    Sampling without a seed gives a different text each time: there is nothing to cache.
    """
    if request.temperature > 0 and request.seed is None:
        return None
    settings = {
        "max_new_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop_token_ids": sorted(request.stop_token_ids),
        "stop_strings": list(request.stop_strings),
    }
    digest = hashlib.sha256()
    digest.update(f"flashcode-exact-{CACHE_FORMAT}\0{fingerprint}\0".encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(array("I", request.prompt_ids).tobytes())
    return digest.hexdigest()


def excluded(path: str, globs: Iterable[str]) -> bool:
    """True for a file that must never be cached: its name or path matches one of `globs`.

    A glob without a slash is matched against the file name (`*.pem`, `.env`, `*secret*`), a
    glob with one against the whole path (`**/private/*`), case-insensitively.
    """
    by_name, by_path = _glob_regexes(tuple(globs))
    whole = path.removeprefix("file://").replace("\\", "/").lower()
    name = whole.rsplit("/", 1)[-1]
    return bool((by_name and by_name.match(name)) or (by_path and by_path.match(whole)))


@functools.lru_cache(maxsize=32)
def _glob_regexes(globs: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    # Checked on every keystroke: one compiled regex per kind instead of fnmatch per glob.
    names = [fnmatch.translate(g.lower()) for g in globs if "/" not in g]
    paths = [fnmatch.translate(p) for g in globs if "/" in g for p in (g.lower(), "*/" + g.lower())]
    return (
        re.compile("|".join(names)) if names else None,
        re.compile("|".join(paths)) if paths else None,
    )


@dataclass
class _Counters:
    """Counts since the last flush (deltas), or totals as read back from disk."""

    hits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    misses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    rejected: int = 0  # pattern candidates found but not accepted (did not parse, unknown names)
    learned: int = 0  # pattern completions stored
    stored: int = 0  # exact completions stored
    latencies: list[float] = field(default_factory=list)  # hit latencies, ms

    def add(self, other: _Counters) -> None:
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
    def from_json(cls, data: Any) -> _Counters:
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


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # a file system without modes (FAT, some mounts)
        os.chmod(path, 0o700)


def _make_private_files(directory: Path) -> None:
    # SQLite gives its -wal and -shm files the database file's mode, so this holds after too.
    database = directory / "cache.db"
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
    for entry in directory.iterdir():
        if entry.is_file():
            with contextlib.suppress(OSError):
                os.chmod(entry, 0o600)


def _probe(directory: Path) -> None:
    """Raise if the layer's database is unreadable or held locked by another process.

    diskcache retries a locked database for a minute when it opens one; a completion cannot
    wait that long, so the question is asked first with a short timeout.
    """
    database = directory / "cache.db"
    if not database.exists() or database.stat().st_size == 0:
        return
    connection = sqlite3.connect(database, timeout=OPEN_LOCK_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("PRAGMA schema_version").fetchone()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()


class _Layer:
    """One diskcache database that moves itself aside and starts over when it breaks."""

    def __init__(
        self, name: str, directory: Path, size_limit: int, warn: Callable[[str], None]
    ) -> None:
        self.name = name
        self.directory = directory
        self.size_limit = size_limit
        self.warn = warn
        self.recoveries = 0
        self._strikes = 0
        self.cache: diskcache.Cache | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.cache = self._connect()
        except _DATABASE_ERRORS as exc:
            self._rebuild(exc)

    def _connect(self) -> diskcache.Cache:
        _make_private_dir(self.directory)
        _probe(self.directory)
        _make_private_files(self.directory)
        cache = diskcache.Cache(
            str(self.directory),
            size_limit=self.size_limit,
            eviction_policy="least-recently-stored",
            timeout=LOCK_TIMEOUT_S,
            statistics=False,
        )
        _make_private_files(self.directory)
        return cache

    def _rebuild(self, error: BaseException) -> None:
        """Move the broken database aside and open a fresh one; failing that, run without."""
        if self.cache is not None:
            with contextlib.suppress(Exception):
                self.cache.close()
        self.cache = None
        self.recoveries += 1
        self._strikes = 0
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.directory.with_name(f"{self.directory.name}.broken-{stamp}-{os.getpid()}")
        try:
            if self.directory.exists():
                os.replace(self.directory, aside)
            self._drop_old_copies()
            self.cache = self._connect()
        except _DATABASE_ERRORS as exc:
            self.warn(
                f"flashcode cache: the {self.name} cache at {self.directory} is unusable "
                f"({error}) and could not be rebuilt ({exc}); it is off until restart"
            )
            return
        self.warn(
            f"flashcode cache: the {self.name} cache database was unusable ({error}); "
            f"moved it to {aside} and started a new one"
        )

    def _drop_old_copies(self) -> None:
        copies = sorted(
            self.directory.parent.glob(f"{self.directory.name}.broken-*"),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in copies[KEEP_BROKEN:]:
            with contextlib.suppress(OSError):
                for item in sorted(old.rglob("*"), reverse=True):
                    item.rmdir() if item.is_dir() else item.unlink()
                old.rmdir()

    @contextlib.contextmanager
    def guard(self) -> Iterator[diskcache.Cache | None]:
        """The open cache (None when the layer is off); database errors end in a rebuild."""
        try:
            yield self.cache
            self._strikes = 0
        except (diskcache.Timeout, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) and not isinstance(exc, diskcache.Timeout):
                self._rebuild(exc)
                return
            # Another process writing: a miss now; a lock that never ends is a broken database.
            self._strikes += 1
            log.debug("%s cache busy (%d): %s", self.name, self._strikes, exc)
            if self._strikes >= LOCKED_STRIKES:
                self._rebuild(exc)
        except (sqlite3.Error, OSError) as exc:
            self._rebuild(exc)

    def entries(self) -> int:
        with self.guard() as cache:
            return len(cache) if cache is not None else 0
        return 0

    def volume(self) -> int:
        with self.guard() as cache:
            return int(cache.volume()) if cache is not None else 0
        return 0

    def close(self) -> None:
        if self.cache is not None:
            with contextlib.suppress(Exception):
                self.cache.close()
            self.cache = None


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
            _make_private_dir(self.directory)
        except OSError as exc:
            self._warn(f"flashcode cache: cannot create {self.directory} ({exc})")
        self.layers = {
            "exact": _Layer(
                "exact", self.directory / "exact", self.max_size_bytes - pattern_bytes, self._warn
            ),
            "pattern": _Layer("pattern", self.directory / "pattern", pattern_bytes, self._warn),
        }
        self._stats_layer = _Layer("stats", self.directory / "stats", 2**20, self._warn)
        self.session = _Counters()  # this process's counts, for the server's stats
        self._pending = _Counters()  # not yet added to the totals on disk
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
        with self.layers["exact"].guard() as cache:
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
        with self.layers["pattern"].guard() as cache:
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
            temporary.write_text(json.dumps(files), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:  # the next start mines those files again: nothing is lost
            log.debug("could not save the mined-files list: %s", exc)

    def _mined_files_path(self) -> Path:
        return self.layers["pattern"].directory / "workspace-files.json"

    # -- statistics ----------------------------------------------------------------------------
    def record(self, layer: str, hit: bool, latency_ms: float | None = None) -> None:
        """Count one lookup of `layer`; a hit's latency (ms, lookup to answer) is kept."""
        assert layer in LAYERS, f"layer must be one of {LAYERS}, got {layer!r}"

        def count(counters: _Counters) -> None:
            (counters.hits if hit else counters.misses)[layer] += 1
            if hit and latency_ms is not None:
                counters.latencies.append(latency_ms)
                del counters.latencies[:-LATENCY_SAMPLES]

        self._count(count)

    def record_rejected(self, count: int = 1) -> None:
        self._count(lambda c: setattr(c, "rejected", c.rejected + count))

    def _count(self, update: Callable[[_Counters], None]) -> None:
        with self._lock:
            update(self.session)
            update(self._pending)
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _read_totals(self, cache: diskcache.Cache) -> _Counters:
        raw = cache.get("totals")
        try:
            return _Counters.from_json(json.loads(raw) if isinstance(raw, str) else None)
        except (ValueError, TypeError, AttributeError):
            return _Counters()

    def flush(self) -> None:
        """Add this process's counts to the totals on disk (other servers add theirs too)."""
        with self._lock:
            pending, self._pending = self._pending, _Counters()
            self._last_flush = time.monotonic()
        with self._stats_layer.guard() as cache:
            if cache is None:
                return
            with cache.transact():
                totals = self._read_totals(cache)
                totals.add(pending)
                cache.set("totals", json.dumps(totals.to_json()))

    def totals(self) -> _Counters:
        with self._stats_layer.guard() as cache:
            totals = self._read_totals(cache) if cache is not None else _Counters()
            with self._lock:
                totals.add(self._pending)
            return totals
        return _Counters()

    def stats(self) -> dict[str, Any]:
        """JSON-able statistics: this session's counts, all-time totals, entries and size."""
        with self._lock:
            session = _Counters.from_json(self.session.to_json())
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

    def clear(self) -> None:
        for layer in self.layers.values():
            with layer.guard() as cache:
                if cache is not None:
                    cache.clear()

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
