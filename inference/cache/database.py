"""Where the cache lives, and one diskcache database that stays private and usable.

The directory is the user's cache directory (platformdirs) unless a setting names another; it is
made readable by the user only (0700, files 0600), because completions quote the user's code.

Nothing here may stop a completion: a database that is corrupt or stays locked is moved aside
(`<layer>.broken-<time>`) and rebuilt, with a warning; if even that fails, the layer answers
misses. A disk with no room left breaks nothing, so it moves nothing aside (that would throw the
user's cache away for a fault of the disk): the layer goes on answering from what it holds,
stores nothing, with one warning, and tries writing again NO_ROOM_RETRY_S later. Sizes are
bounded with diskcache's size limit, least recently stored entries going first (a hit does not
write, which keeps hits fast).
"""

from __future__ import annotations

import contextlib
import errno
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
NO_ROOM_RETRY_S = 60.0  # after the disk ran full, how long until a write is tried again
_DATABASE_ERRORS = (sqlite3.Error, diskcache.Timeout, OSError)
_SQLITE_FULL = 13  # sqlite's result code for "database or disk is full"
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_room(error: BaseException) -> bool:
    """Whether `error` says the disk, the user's quota or the file size limit has no room left."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)  # Python 3.11 and later
        return code == _SQLITE_FULL or "disk is full" in str(error)
    return isinstance(error, OSError) and error.errno in _NO_ROOM_ERRNOS


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


def _describe(error: BaseException) -> str:
    if isinstance(error, diskcache.Timeout):  # it says nothing of itself
        return "database is locked: another process kept it locked"
    return str(error) or type(error).__name__


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
        self._room_again_at: float | None = None  # set while the disk has no room
        self.cache: diskcache.Cache | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.cache = self._connect()
        except _DATABASE_ERRORS as exc:
            if no_room(exc):
                self._out_of_room(exc)
            else:
                self._rebuild(exc)

    @property
    def out_of_room(self) -> bool:
        return self._room_again_at is not None and time.monotonic() < self._room_again_at

    def _out_of_room(self, error: BaseException) -> None:
        """No room on the disk: warn once, store nothing until NO_ROOM_RETRY_S from now."""
        if self._room_again_at is None:
            self.warn(
                f"flashcode cache: no room left on the disk for the {self.name} cache at "
                f"{self.directory} ({error}); completions go on, and nothing new is stored in it "
                "until there is room again"
            )
        self._room_again_at = time.monotonic() + NO_ROOM_RETRY_S

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
                f"({_describe(error)}) and could not be rebuilt ({_describe(exc)}); it is off "
                "until restart"
            )
            return
        self.warn(
            f"flashcode cache: the {self.name} cache database was unusable ({_describe(error)}); "
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
    def guard(self, write: bool = False) -> Iterator[diskcache.Cache | None]:
        """The open cache (None when the layer is off, or for a write while the disk has no
        room); database errors end in a rebuild, a full disk in a pause of the writes."""
        if self.cache is None and self._room_again_at is not None and not self.out_of_room:
            self._open()  # the disk was full when the layer was to be opened: try again
        if write and self.out_of_room:
            yield None
            return
        try:
            yield self.cache
            if write:  # a read that works says nothing of another process's write lock
                self._strikes = 0
                self._room_again_at = None  # and there is room again
        except _DATABASE_ERRORS as exc:
            self._database_error(exc)

    def _database_error(self, exc: BaseException) -> None:
        if no_room(exc):
            self._out_of_room(exc)
            return
        locked = isinstance(exc, diskcache.Timeout) or (
            isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        )
        if not locked:
            self._rebuild(exc)
            return
        # Another process writing: a miss now; a lock that never ends is a broken database.
        self._strikes += 1
        log.debug("%s cache busy (%d): %s", self.name, self._strikes, exc)
        if self._strikes >= LOCKED_STRIKES:
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
