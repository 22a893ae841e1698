"""Where the cache lives, and one diskcache database that stays private and usable.

The directory is the user's cache directory (platformdirs) unless a setting names another; it is
made readable by the user only (0700, files 0600), because completions quote the user's code.

Nothing here may stop a completion: a database that is corrupt or stays locked is moved aside
(`<layer>.broken-<time>`) and rebuilt, with a warning; if even that fails, the layer answers
misses. Sizes are bounded with diskcache's size limit, least recently stored entries going first
(a hit does not write, which keeps hits fast).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import platformdirs

log = logging.getLogger("flashcode.cache")

LOCK_TIMEOUT_S = 0.25  # how long one operation waits for another process's write lock
OPEN_LOCK_TIMEOUT_S = 1.0  # opening waits longer: a database is not given up on lightly
LOCKED_STRIKES = 3  # consecutive lock timeouts before a database is taken as stuck
KEEP_BROKEN = 2  # moved-aside copies kept per layer, newest first
_DATABASE_ERRORS = (sqlite3.Error, diskcache.Timeout, OSError)


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("flashcode")) / "completions"


def cache_dir(directory: str | os.PathLike[str] | None) -> Path:
    """The cache directory for a setting value ("" or None = the user cache directory)."""
    return Path(directory).expanduser() if directory else default_cache_dir()


def make_private_dir(path: Path) -> None:
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


class CacheDatabase:
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
        make_private_dir(self.directory)
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
