"""The training corpus: the running interpreter's CPython standard library, never site-packages."""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# 2% of files, chosen by a hash of their path relative to Lib/, so the split never changes.
VALIDATION_PER_MILLE = 20
MAX_FILE_BYTES = 400_000  # a handful of generated tables are larger and teach nothing


@dataclass(frozen=True)
class SourceFile:
    relpath: str
    text: str


@dataclass(frozen=True)
class Corpus:
    train: list[SourceFile]
    validation: list[SourceFile]

    @property
    def train_chars(self) -> int:
        return sum(len(f.text) for f in self.train)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_validation(relpath: str) -> bool:
    digest = hashlib.sha1(relpath.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < VALIDATION_PER_MILLE


def collect(root: Path | None = None) -> Corpus:
    """Every distinct .py file of the stdlib (tests included), split into train and validation."""
    root = root or stdlib_root()
    seen: set[bytes] = set()
    train: list[SourceFile] = []
    validation: list[SourceFile] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel or "dist-packages" in rel:
            continue
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        if len(raw) > MAX_FILE_BYTES or not raw.strip():
            continue
        digest = hashlib.sha256(raw).digest()
        if digest in seen:
            continue
        seen.add(digest)
        text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
        (validation if is_validation(rel) else train).append(SourceFile(rel, text))
    return Corpus(train=train, validation=validation)
