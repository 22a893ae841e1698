"""The base segment on disk, so that a restart re-reads only the files that changed.

One directory per workspace and model fingerprint (the tokenizer's hash: ids from another
tokenizer mean nothing) under `<cache directory>/workspace-index/`. It holds the base's token
bytes, its suffix array, and a manifest (written last) with each file's stamp and span and a
checksum of both arrays. Directory 0700, files 0600: the tokens are the user's code.

At the next start, a file whose mtime and size are unchanged takes its tokens from here; when
every file is unchanged the suffix array is reused too, memory-mapped. Anything that does not
add up (a bad manifest, a wrong size or checksum, a span off the end) is one log line, and the
index is built from the files again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.cache.database import make_private_dir
from inference.ngram import TokenSuffixIndex
from lsp_server.workspace.reader import Stamp
from lsp_server.workspace.segments import Span, token_width

log = logging.getLogger(__name__)

FORMAT = 1
SUBDIRECTORY = "workspace-index"
MANIFEST, TOKENS, SUFFIXES = "manifest.json", "tokens.bin", "suffixes.bin"


def tokenizer_fingerprint(tokenizer_file: Path) -> str:
    """The model's identity for the index: its tokenizer file's hash."""
    digest = hashlib.sha256()
    with open(tokenizer_file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def index_directory(cache_dir: Path, folders: Sequence[Path], fingerprint: str) -> Path:
    key = json.dumps([FORMAT, fingerprint, sorted(str(folder) for folder in folders)])
    return cache_dir / SUBDIRECTORY / hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SavedFile:
    stamp: Stamp
    start: int
    end: int


@dataclass
class SavedBase:
    """A base read back from disk: the files in their saved order, and the two arrays."""

    files: dict[Path, SavedFile]
    tokens: np.ndarray  # memory-mapped, big-endian ids
    suffix_array: np.ndarray  # memory-mapped int32

    def tokens_of(self, path: Path) -> np.ndarray:
        saved = self.files[path]
        return self.tokens[saved.start : saved.end]

    def segment(self, separator: int) -> tuple[TokenSuffixIndex, list[Span]]:
        """The saved base as it was, suffix array included."""
        segment = TokenSuffixIndex(self.tokens, separator, suffix_array=self.suffix_array)
        spans = [Span(path, f.stamp, segment, f.start, f.end) for path, f in self.files.items()]
        return segment, spans


def _checksum(data: memoryview) -> int:
    return zlib.crc32(data)


def _file_checksum(path: Path) -> int:
    """Read with plain reads, not through the memory map: pages a query never touches stay out
    of the server's resident memory."""
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc


def _write_private(path: Path, data: bytes | memoryview) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.replace(temporary, path)


def save_base(
    directory: Path, fingerprint: str, segment: TokenSuffixIndex, spans: Sequence[Span]
) -> None:
    """Write the base; raises OSError when the disk refuses (the caller logs it)."""
    make_private_dir(directory.parent)  # workspace-index/ lists which workspaces were indexed
    make_private_dir(directory)
    tokens = segment.tokens.data.cast("B")
    suffixes = np.ascontiguousarray(segment.suffix_array, dtype=np.int32)
    _write_private(directory / TOKENS, tokens)
    _write_private(directory / SUFFIXES, suffixes.data.cast("B"))
    manifest = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "separator": segment.separator,
        "tokens": len(segment),
        "tokensCrc": _checksum(tokens),
        "suffixesCrc": _checksum(suffixes.data.cast("B")),
        "files": [
            [str(span.path), span.stamp.mtime_ns, span.stamp.size, span.start, span.end]
            for span in spans
            if span.segment is segment
        ],
    }
    _write_private(directory / MANIFEST, json.dumps(manifest).encode())


class CorruptIndex(ValueError):
    """A saved index that does not add up."""


def load_base(directory: Path, fingerprint: str, separator: int) -> SavedBase | None:
    """The saved base, or None when there is none or it cannot be trusted (logged once)."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        return _load(directory, fingerprint, separator)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "workspace index: the saved index in %s is unusable (%s); rebuilding", directory, exc
        )
        return None


def _load(directory: Path, fingerprint: str, separator: int) -> SavedBase:
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if manifest["format"] != FORMAT or manifest["fingerprint"] != fingerprint:
        raise CorruptIndex("made for another format or tokenizer")
    if manifest["separator"] != separator:
        raise CorruptIndex("made with another separator")
    count = int(manifest["tokens"])
    width = token_width(separator)
    if (directory / TOKENS).stat().st_size != count * width:
        raise CorruptIndex("the token file has the wrong size")
    if (directory / SUFFIXES).stat().st_size != count * 4:
        raise CorruptIndex("the suffix file has the wrong size")
    if count == 0:
        raise CorruptIndex("it is empty")
    if (
        _file_checksum(directory / TOKENS) != manifest["tokensCrc"]
        or _file_checksum(directory / SUFFIXES) != manifest["suffixesCrc"]
    ):
        raise CorruptIndex("a checksum does not match")
    tokens = np.memmap(directory / TOKENS, dtype=np.dtype(f">u{width}"), mode="r")
    suffixes = np.memmap(directory / SUFFIXES, dtype=np.int32, mode="r")
    files: dict[Path, SavedFile] = {}
    for path, mtime_ns, size, start, end in manifest["files"]:
        if not (0 <= start <= end < count) or int(tokens[end]) != separator:
            raise CorruptIndex(f"the span of {path} is off")
        files[Path(path)] = SavedFile(Stamp(int(mtime_ns), int(size)), int(start), int(end))
    return SavedBase(files, tokens, suffixes)
