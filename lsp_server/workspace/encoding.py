"""Tokenizing workspace files with the model's tokenizer, in bounded memory.

`tokenizers` holds about a hundred bytes per character of a text while it encodes it (offsets,
alignments, token strings): one 750 KB file (CPython's pydoc_data/topics.py) costs 80 MB for a
moment. So a long text is encoded in pieces of about PIECE_CHARS, cut just after a newline where no
pre-token of the tokenizer crosses: for Qwen's split pattern, before any line that is not
blank (indented or not); for GPT-2's, before a line that starts with a non-blank character.
The pieces then give exactly the ids of the whole text. Which cut is safe is probed once per
tokenizer, on texts cut at such points; a tokenizer for which neither is (a SentencePiece
tokenizer adds a space at the start of each text) gets its texts whole.

Batches go to `encode_batch` (the tokenizer's own threads, without the GIL). After each, the C
allocator is asked to hand freed memory back (`malloc_trim`, glibc only): the tokenizer's
threads leave their arenas full of freed pages that would otherwise stay resident.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from lsp_server.native_memory import glibc_trim

PIECE_CHARS = 32_768  # a piece is cut at the first line start past this many characters
# Cut points, the finer first, each with texts that the probe joins and compares.
_CUTS = (
    (
        re.compile(r"\n(?=[ \t]*\S)"),
        ("class A:\n", "    x = 1\n\n", "\tdef f(a):  # é\n", "        return a\n", "x = [\n"),
    ),
    (
        re.compile(r"\n(?=\S)"),
        ("import os\n\n\nclass A:\n    x = 1\n\n", "def f(a):\n    return a  # é\n", "x = [\n"),
    ),
)


class IndexTokenizer(Protocol):
    """What the index needs of inference.tokenizer.Tokenizer (`encode_batch` and
    `decode_batch` are used when it has them)."""

    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


_TRIM = glibc_trim()


def release_freed_memory() -> None:
    if _TRIM is not None:
        _TRIM()


def pieces(text: str, cut: re.Pattern[str], size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of about `size` characters, each cut where `cut` matches (just
    after a newline)."""
    if len(text) <= size:
        return [text]
    parts: list[str] = []
    start = 0
    while len(text) - start > size:
        found = cut.search(text, start + size)
        if found is None:
            break
        parts.append(text[start : found.start() + 1])
        start = found.start() + 1
    parts.append(text[start:])
    return parts


class Encoder:
    """Token ids of texts as compact arrays, for one tokenizer."""

    def __init__(self, tokenizer: IndexTokenizer, width: int) -> None:
        self.tokenizer = tokenizer
        self.dtype = np.dtype(np.uint16 if width == 2 else np.uint32)
        batch = getattr(tokenizer, "encode_batch", None)
        self._batch: Callable[[Sequence[str]], list[list[int]]] = batch or (
            lambda texts: [tokenizer.encode(text) for text in texts]
        )
        self.cut = safe_cut(self._batch)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        cut = self.cut
        split = [pieces(text, cut) if cut is not None else [text] for text in texts]
        flat = [piece for parts in split for piece in parts]
        encoded = iter(self._batch(flat)) if flat else iter(())
        result: list[np.ndarray] = []
        for parts in split:
            ids = [np.asarray(next(encoded), dtype=self.dtype) for _ in parts]
            result.append(ids[0] if len(ids) == 1 else np.concatenate(ids))
        del encoded, flat
        release_freed_memory()
        return result


def safe_cut(encode: Callable[[Sequence[str]], list[list[int]]]) -> re.Pattern[str] | None:
    """The finest cut at which texts encode to the ids of the whole text, or None."""
    for cut, probe in _CUTS:
        with contextlib.suppress(Exception):
            whole, *parts = encode(["".join(probe), *probe])
            if whole == [token for part in parts for token in part]:
                return cut
    return None
