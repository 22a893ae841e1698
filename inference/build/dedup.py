"""Exact, then near-duplicate removal of training files, with what each step removed.

Exact: a SHA-256 of the text with whitespace normalised (line ends, trailing blanks, blank runs),
so reindented copies and CRLF copies count as one. Near: MinHash over word 5-gram shingles with
LSH at Jaccard ~0.85 (datasketch), the usual recipe for code corpora (The Stack, StarCoder). The
first file in corpus order wins, so the result does not depend on hash-table order. Near
deduplication needs `datasketch` (installed with the build venv); only exact needs nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class DedupStats:
    files_in: int = 0
    bytes_in: int = 0
    exact_files: int = 0  # removed as exact copies
    exact_bytes: int = 0
    near_files: int = 0  # removed as near copies
    near_bytes: int = 0


def normalise_whitespace(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{2,}", "\n", "\n".join(line.strip() for line in lines)).strip()


def content_hash(text: str) -> bytes:
    return hashlib.sha256(normalise_whitespace(text).encode()).digest()


def shingles(text: str, n: int = 5) -> set[str]:
    tokens = _TOKEN.findall(text)
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def exact_dedup(items: Sequence[T], text_of: Callable[[T], str]) -> tuple[list[T], list[T]]:
    """(kept, removed): the first of each whitespace-normalised content wins."""
    seen: set[bytes] = set()
    kept: list[T] = []
    removed: list[T] = []
    for item in items:
        digest = content_hash(text_of(item))
        (removed if digest in seen else kept).append(item)
        seen.add(digest)
    return kept, removed


def near_dedup(
    items: Sequence[T],
    text_of: Callable[[T], str],
    threshold: float = 0.85,
    num_perm: int = 128,
    shingle_n: int = 5,
) -> tuple[list[T], list[T]]:
    """(kept, removed): a file whose MinHash LSH finds an earlier kept near-copy is removed."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: list[T] = []
    removed: list[T] = []
    for index, item in enumerate(items):
        grams = shingles(text_of(item), shingle_n)
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch([g.encode() for g in grams])
        if lsh.query(signature):
            removed.append(item)
            continue
        lsh.insert(str(index), signature)
        kept.append(item)
    return kept, removed


def deduplicate(
    items: Sequence[T], text_of: Callable[[T], str], near: bool = True, threshold: float = 0.85
) -> tuple[list[T], DedupStats]:
    stats = DedupStats(files_in=len(items), bytes_in=sum(len(text_of(i).encode()) for i in items))
    kept, removed = exact_dedup(items, text_of)
    stats.exact_files = len(removed)
    stats.exact_bytes = sum(len(text_of(i).encode()) for i in removed)
    if near:
        kept, removed = near_dedup(kept, text_of, threshold)
        stats.near_files = len(removed)
        stats.near_bytes = sum(len(text_of(i).encode()) for i in removed)
    return kept, stats
