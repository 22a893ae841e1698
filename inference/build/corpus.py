"""The training corpora: the shipped model's (stdlib only) and the next model's (many sources).

`collect()` is the shipped model's corpus: the CPython standard library, split by a hash of each
file's path. The benchmarks' held-out stdlib files come from it, so it stays as it was while that
model ships. `build_corpus()` is the next model's: the stdlib plus the allow-listed packages
(sources.py), deduplicated exactly and then near (dedup.py), split into train and validation by
whole packages (`VALIDATION_GROUPS`), so validation measures code of packages never seen.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inference.build.dedup import deduplicate
from inference.build.sources import (
    EVAL_PROJECTS,
    VENDORED_DIRS,
    Source,
    group_of,
    iter_source_paths,
)

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


def _source_bytes(path: Path) -> bytes | None:
    """A file worth training on, or None: unreadable, empty or a generated table too big."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return raw if raw.strip() and len(raw) <= MAX_FILE_BYTES else None


def _as_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n")


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
        raw = _source_bytes(path)
        if raw is None:
            continue
        digest = hashlib.sha256(raw).digest()
        if digest in seen:
            continue
        seen.add(digest)
        (validation if is_validation(rel) else train).append(SourceFile(rel, _as_text(raw)))
    return Corpus(train=train, validation=validation)


# Whole top-level subpackages held out for the next model's validation (sources.group_of names).
# Fixed by name, not by hash, so the split survives new package versions; tests included with
# the code they test, so no held-out package has its tests in training.
VALIDATION_GROUPS: frozenset[str] = frozenset(
    {
        "stdlib/email",
        "stdlib/test/test_email",
        "stdlib/json",
        "stdlib/test/test_json",
        "stdlib/tomllib",
        "stdlib/test/test_tomllib",
        "torch/distributions",
        "transformers/pipelines",
        "sympy/combinatorics",
        "networkx/readwrite",
        "numpy/polynomial",
        "mpmath/calculus",
        "mypy/server",
        "setuptools/command",
        "_pytest/assertion",
        "huggingface_hub/inference",
    }
)


@dataclass(frozen=True)
class CorpusFile:
    source: str  # distribution name or "stdlib"
    group: str  # top-level subpackage: the unit of the validation split
    relpath: str  # path inside its package base, as the repository rows show it
    text: str


def read_source_files(source: Source) -> list[CorpusFile]:
    files: list[CorpusFile] = []
    for rel, path in iter_source_paths(source):
        raw = _source_bytes(path)
        if raw is not None:
            files.append(CorpusFile(source.name, group_of(source.name, rel), rel, _as_text(raw)))
    return files


def split_by_group(
    files: list[CorpusFile], held_out: frozenset[str] = VALIDATION_GROUPS
) -> tuple[list[CorpusFile], list[CorpusFile]]:
    """(train, validation): every file of a held-out group, and only those, is validation."""
    train = [f for f in files if f.group not in held_out]
    validation = [f for f in files if f.group in held_out]
    return train, validation


def build_corpus(
    sources: list[Source], near: bool = True
) -> tuple[list[CorpusFile], list[CorpusFile], dict[str, Any]]:
    """(train, validation, report): read, deduplicate, split. The report goes into the card."""
    files: list[CorpusFile] = []
    per_source: dict[str, dict[str, Any]] = {}
    for source in sources:
        read = read_source_files(source)
        files += read
        per_source[source.name] = {
            "version": source.version,
            "licence": source.licence,
            "files_read": len(read),
            "bytes_read": sum(len(f.text.encode()) for f in read),
        }
    kept, stats = deduplicate(files, lambda f: f.text, near=near)
    for name, record in per_source.items():
        mine = [f for f in kept if f.source == name]
        record["files_kept"] = len(mine)
        record["bytes_kept"] = sum(len(f.text.encode()) for f in mine)
    train, validation = split_by_group(kept)
    report = {
        "sources": per_source,
        "dedup": asdict(stats),
        "train": {"files": len(train), "bytes": sum(len(f.text.encode()) for f in train)},
        "validation": {
            "files": len(validation),
            "bytes": sum(len(f.text.encode()) for f in validation),
            "groups": sorted({f.group for f in validation}),
        },
        "eval_projects_excluded": list(EVAL_PROJECTS),
        "vendored_dirs_excluded": sorted(VENDORED_DIRS),
    }
    return train, validation, report
