"""Reading one workspace file for the index: bounded, never blocking, and only real source text.

A file is opened without blocking (a FIFO that slipped past the walk must not hang the indexer),
checked to be a regular file on the open descriptor (the path may have changed since the walk),
and read up to the size cap. What comes back is text or the reason it is left out:
- "binary": a NUL byte anywhere (git's own test for a binary file);
- "not_utf8": not UTF-8 (a UTF-8 byte-order mark is dropped);
- "minified": a line over MAX_LINE characters, or lines of MEAN_LINE characters on average:
  bundled or generated code, whose tokens would crowd the user's own;
- "too_big", "not_regular", "unreadable" (any OSError: gone, a dangling link, a read that fails).
The stamp is taken from the descriptor before reading, so a file changed while it is read looks
changed at the next start, never the other way round.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_LINE = 5_000  # characters in one line
MEAN_LINE = 250  # characters a line on average, over files of more than MEAN_CHECK_CHARS
MEAN_CHECK_CHARS = 4_000  # a short file of a few long lines is left alone
READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class Stamp:
    """When a file's indexed text was current: its mtime and size at the time it was read.
    A text from an open buffer has size -1, so it never equals a file on disk."""

    mtime_ns: int
    size: int

    @property
    def from_buffer(self) -> bool:
        return self.size < 0


@dataclass(frozen=True)
class Read:
    text: str | None  # None when left out
    reason: str | None  # why it was left out
    stamp: Stamp


def text_problem(text: str, max_chars: int) -> str | None:
    """Why a text is not indexed as source, or None (the checks after decoding)."""
    if len(text) > max_chars:
        return "too_big"
    if "\x00" in text:
        return "binary"
    longest = max(map(len, text.split("\n")), default=0)
    lines = text.count("\n") + 1
    if longest > MAX_LINE or (len(text) > MEAN_CHECK_CHARS and len(text) / lines > MEAN_LINE):
        return "minified"
    return None


def read_source(path: Path, max_bytes: int) -> Read:
    """The text of the file at `path`, or the reason it is left out."""
    unknown = Stamp(0, 0)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log.debug("workspace index: cannot open %s (%s)", path, exc)
        return Read(None, "unreadable", unknown)
    try:
        info = os.fstat(descriptor)
        stamp = Stamp(info.st_mtime_ns, info.st_size)
        if not stat.S_ISREG(info.st_mode):
            return Read(None, "not_regular", stamp)
        if info.st_size > max_bytes:
            return Read(None, "too_big", stamp)
        data = _read_at_most(descriptor, max_bytes + 1)
    except OSError as exc:
        log.info("workspace index: cannot read %s (%s)", path, exc)
        return Read(None, "unreadable", unknown)
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        return Read(None, "too_big", stamp)  # it grew after the walk looked
    if b"\x00" in data:
        return Read(None, "binary", stamp)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return Read(None, "not_utf8", stamp)
    problem = text_problem(text, max_bytes)
    return Read(None if problem else text, problem, stamp)


def _read_at_most(descriptor: int, limit: int) -> bytes:
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(descriptor, min(READ_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
