"""The usage files: counts kept in memory and added to files on disk in batches.

They live in `usage/` in the completion cache's directory (the user cache directory unless
`cache.directory` names another), one file per month (`2026-12.json`), readable by the user only
(0600, in 0700 directories). They hold counts per day, layer and language, token counts and
latency histograms (figures.py): never any code text, file name or suggestion. One file per month
keeps a write proportional to a month of counts, not to the whole history: rewriting a year of
heavy use in one file took 0.8 s, a month's file takes milliseconds.

Writes are cheap: an event only changes memory, and the pending counts are added to the files
every FLUSH_EVERY_EVENTS events or FLUSH_INTERVAL_S seconds (checked at the next event: no
timer thread), at shutdown, at exit and before a report. A flush reads a month's file, adds the
pending counts and replaces the file atomically, under an advisory lock, so that several servers
(two editors) add to the same totals. Nothing here may stop a completion: a corrupt file is moved
aside (`2026-12.json.broken-<time>`) and that month starts again; a file that cannot be written
keeps its counts in memory for the next try. Either is said once, through `on_warning`.
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

DIRECTORY_NAME = "usage"
FLUSH_EVERY_EVENTS = 50
FLUSH_INTERVAL_S = 60.0
_MONTH_FILES = "[0-9][0-9][0-9][0-9]-[0-9][0-9].json"


def usage_dir(cache_directory: str | None) -> Path:
    """The usage directory for a `cache.directory` setting ("" = the user cache directory)."""
    return cache_dir(cache_directory) / DIRECTORY_NAME


def month_file(directory: Path, date: str) -> Path:
    """The file of the month of `date` ("YYYY-MM-DD")."""
    return directory / f"{date[:7]}.json"


def read_month(path: Path) -> Usage:
    """The counts stored in one month's file; none when there is no file. OSError when it cannot
    be read, UsageFormatError when it is not a usage file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Usage()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageFormatError(f"not JSON ({exc})") from exc
    return Usage.from_json(data)


def read_usage(
    directory: Path, on_problem: Callable[[Path, Exception], None] | None = None
) -> Usage:
    """Every month's counts in `directory`; a month that cannot be read is left out and passed
    to `on_problem`."""
    usage = Usage()
    if not directory.is_dir():
        return usage
    for path in sorted(directory.glob(_MONTH_FILES)):
        try:
            usage.add(read_month(path))
        except (OSError, UsageFormatError) as exc:
            if on_problem is not None:
                on_problem(path, exc)
    return usage


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
def _locked(directory: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    descriptor = os.open(directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


class UsageStore:
    """Pending counts in memory, added to the month files of `directory` in batches."""

    def __init__(
        self,
        directory: Path,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
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
        """Add the pending counts to the files; False when some could not be written (those
        stay pending)."""
        with self._lock:
            self._events, self._last_flush = 0, self._clock()
            months: dict[Path, Usage] = {}
            for date, day in self._pending.days.items():
                if not day.is_empty():
                    months.setdefault(month_file(self.directory, date), Usage()).days[date] = day
            if not months:
                return True
            kept = Usage()
            try:
                make_private_dir(self.directory)
                with _locked(self.directory):
                    for path, pending in months.items():
                        try:
                            self._add_to(path, pending)
                        except OSError as exc:
                            self._warn(f"flashcode usage: cannot write {path} ({exc})")
                            kept.add(pending)
            except OSError as exc:
                self._warn(f"flashcode usage: cannot write in {self.directory} ({exc})")
                return False
            self._pending = kept
            return kept.is_empty()

    def totals(self) -> Usage:
        """Everything counted: the files and what is still pending."""
        self.flush()
        with self._lock:
            usage = read_usage(self.directory)  # a month it cannot read was said by the flush
            usage.add(self._pending)
            return usage

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)

    def _add_to(self, path: Path, pending: Usage) -> None:
        try:
            stored = read_month(path)
        except UsageFormatError as exc:
            aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
            os.replace(path, aside)
            self._warn(
                f"flashcode usage: {path} was unreadable ({exc}); moved it to {aside.name}"
                " and started that month again"
            )
            stored = Usage()
        stored.add(pending)
        _write_private(path, stored)

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
