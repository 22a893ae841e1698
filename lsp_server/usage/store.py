"""The usage file: counts kept in memory and added to the file on disk in batches.

The file is `usage.json` in the completion cache's directory (the user cache directory unless
`cache.directory` names another), readable by the user only (0600, in a 0700 directory). It holds
counts per day, layer and language, token counts and latency histograms (figures.py): never any
code text, file name or suggestion.

Writes are cheap: an event only changes memory, and the pending counts are added to the file
every FLUSH_EVERY_EVENTS events or FLUSH_INTERVAL_S seconds (checked at the next event: no
timer thread), at shutdown and at exit. A flush reads the file, adds the pending counts and
replaces the file atomically, under an advisory lock, so that several servers (two editors) add
to the same totals. Nothing here may stop a completion: a corrupt file is moved aside
(`usage.json.broken-<time>`) and counting starts again; a file that cannot be written keeps the
counts in memory for the next try. Either is said once, through `on_warning`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from inference.cache.database import cache_dir, make_private_dir
from lsp_server.usage.figures import DayUsage, Usage, UsageFormatError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: servers sharing a file may lose a batch
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FILE_NAME = "usage.json"
FLUSH_EVERY_EVENTS = 50
FLUSH_INTERVAL_S = 60.0


def usage_file(cache_directory: str | None) -> Path:
    """The usage file for a `cache.directory` setting ("" = the user cache directory)."""
    return cache_dir(cache_directory) / FILE_NAME


def read_usage(path: Path) -> Usage:
    """The counts stored at `path`; none when there is no file. OSError when it cannot be read,
    UsageFormatError when it is not a usage file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Usage()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageFormatError(f"not JSON ({exc})") from exc
    return Usage.from_json(data)


def _write_private(path: Path, usage: Usage) -> None:
    """Replace `path` at once (never a half-written file), readable by the user only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(usage.to_json(), out, separators=(",", ":"))
        with contextlib.suppress(OSError):  # a file system without modes
            os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


class UsageStore:
    """Pending counts in memory, added to the usage file in batches."""

    def __init__(
        self,
        path: Path,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._on_warning = on_warning
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = Usage()
        self._events = 0
        self._last_flush = clock()
        self._warned = False
        atexit.register(self.flush)

    def update(self, date: str, change: Callable[[DayUsage], None]) -> None:
        """Change the pending counts of day `date`; a flush follows when one is due."""
        with self._lock:
            change(self._pending.day(date))
            self._events += 1
            due = (
                self._events >= FLUSH_EVERY_EVENTS
                or self._clock() - self._last_flush >= FLUSH_INTERVAL_S
            )
        if due:
            self.flush()

    def flush(self) -> bool:
        """Add the pending counts to the file; False (they stay pending) when it cannot be
        written."""
        with self._lock:
            self._events, self._last_flush = 0, self._clock()
            if self._pending.is_empty():
                return True
            try:
                make_private_dir(self.path.parent)
                with _locked(self.path):
                    stored = self._stored_or_fresh()
                    stored.add(self._pending)
                    _write_private(self.path, stored)
            except OSError as exc:
                self._warn(f"flashcode usage: cannot write {self.path} ({exc}); counting goes on")
                return False
            self._pending = Usage()
            return True

    def totals(self) -> Usage:
        """Everything counted: the file and what is still pending."""
        self.flush()
        with self._lock:
            usage = Usage()
            with contextlib.suppress(OSError, UsageFormatError):  # said by the flush already
                usage.add(read_usage(self.path))
            usage.add(self._pending)
            return usage

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)

    def _stored_or_fresh(self) -> Usage:
        """The file's counts; a file that is not a usage file is moved aside and replaced."""
        try:
            return read_usage(self.path)
        except UsageFormatError as exc:
            aside = self.path.with_name(f"{self.path.name}.broken-{int(time.time())}")
            os.replace(self.path, aside)
            self._warn(
                f"flashcode usage: {self.path} was unreadable ({exc}); moved it to {aside.name}"
                " and started counting again"
            )
            return Usage()

    def _warn(self, message: str) -> None:
        if self._warned:  # once per store: the same fault would repeat at every flush
            log.debug("%s", message)
            return
        self._warned = True
        log.warning("%s", message)
        if self._on_warning is not None:
            try:
                self._on_warning(message)
            except Exception:  # a warning channel that fails must not stop counting
                log.exception("usage warning callback failed")
