"""Fill-in-the-middle (Bavarian et al. 2022) for the training rows: where to cut, how to order.

A repository row (repo_rows.py) becomes a FIM example with probability `fim_rate`, in PSM order
(prefix, suffix, middle) or, for a share `spm_rate` of those, SPM order (suffix, prefix, middle).
The middles are cut three ways: spans of whole lines (the block an editor asks for), from a
random column inside a line (what is left of a line the user is typing), and between two random
characters. The `<|endoftext|>` that ends a middle can weigh more in the loss
(`end_of_middle_weights`), so the model learns to stop where the middle ends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer


@dataclass(frozen=True)
class FimConfig:
    fim_rate: float = 0.5  # share of chunks (or repository rows) turned into FIM examples
    spm_rate: float = 0.3  # share of FIM examples in SPM order
    empty_suffix_rate: float = 0.15  # share of FIM examples whose suffix is empty (end of file)
    line_span_rate: float = 0.4  # share of the other FIM splits on whole-line boundaries
    in_line_rate: float = 0.4  # share starting at a random column inside a line (mid-line typing)
    max_span_lines: int = 12  # longest line-aligned middle
    end_of_middle_weight: float = 3.0  # loss weight of the token that ends a middle


@dataclass(frozen=True)
class SpecialIds:
    eos: int
    prefix: int
    middle: int
    suffix: int
    pad: int
    file_sep: int
    repo_name: int

    @classmethod
    def from_tokenizer(cls, tok: Tokenizer) -> SpecialIds:
        def tid(name: str) -> int:
            value = tok.token_to_id(name)
            assert value is not None, f"tokenizer lacks {name}"
            return value

        return cls(
            eos=tid("<|endoftext|>"),
            prefix=tid("<|fim_prefix|>"),
            middle=tid("<|fim_middle|>"),
            suffix=tid("<|fim_suffix|>"),
            pad=tid("<|fim_pad|>"),
            file_sep=tid("<|file_sep|>"),
            repo_name=tid("<|repo_name|>"),
        )


def split_chunks(text: str, chunk_chars: int) -> list[str]:
    """Cut at line boundaries into pieces of about chunk_chars characters."""
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + chunk_chars)
        if end < len(text):
            newline = text.rfind("\n", start + chunk_chars // 2, end)
            if newline != -1:
                end = newline + 1
        chunks.append(text[start:end])
        start = end
    return chunks


def _line_cut(text: str, rng: random.Random, cfg: FimConfig) -> tuple[str, str, str] | None:
    """A middle of whole lines, starting at the line start or after its indentation."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return None
    first = rng.randrange(len(lines))
    count = min(len(lines) - first, 1 + int(rng.expovariate(1 / 2.5)), cfg.max_span_lines)
    # After the indentation half of the time: the cursor on an indented empty line.
    line = lines[first]
    indent = len(line) - len(line.lstrip(" \t"))
    cut = indent if rng.random() < 0.5 else 0
    head = "".join(lines[:first]) + line[:cut]
    middle = line[cut:] + "".join(lines[first + 1 : first + count])
    return head, middle, "".join(lines[first + count :])


def _in_line_cut(text: str, rng: random.Random) -> tuple[str, str, str] | None:
    """A middle starting at a random column inside a line: the user typed part of the line.

    It ends at the line's end (the newline stays in the suffix) three times in four, the
    single-line completion an editor asks for; otherwise at a random later column of that line.
    """
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    lines = [(s, text.find("\n", s)) for s in starts]
    lines = [
        (s, e if e != -1 else len(text)) for s, e in lines if (e if e != -1 else len(text)) > s
    ]
    if not lines:
        return None
    start, end = lines[rng.randrange(len(lines))]
    a = rng.randrange(start, end)
    b = end if rng.random() < 0.75 else rng.randrange(a + 1, end + 1)
    return text[:a], text[a:b], text[b:]


def choose_split(text: str, rng: random.Random, cfg: FimConfig) -> tuple[str, str, str]:
    """(prefix, middle, suffix) of `text`; their concatenation is always `text`."""
    if rng.random() < cfg.empty_suffix_rate:
        # The cursor at the end of what is written so far: the most common case in an editor.
        cut = rng.randrange(len(text) // 4, len(text))
        newline = text.rfind("\n", 0, cut)
        if newline > 0 and rng.random() < 0.5:
            cut = newline + 1 + len(text[newline + 1 :]) - len(text[newline + 1 :].lstrip(" \t"))
        return text[:cut], text[cut:], ""
    draw = rng.random()
    split = None
    if draw < cfg.line_span_rate:
        split = _line_cut(text, rng, cfg)
    elif draw < cfg.line_span_rate + cfg.in_line_rate:
        split = _in_line_cut(text, rng)
    if split is not None:
        return split
    a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    return text[:a], text[a:b], text[b:]


def fim_ids(
    prefix: list[int], middle: list[int], suffix: list[int], ids: SpecialIds, spm: bool
) -> list[int]:
    """One FIM example in Qwen2.5-Coder's order; `<|endoftext|>` ends the middle."""
    if spm:
        return [ids.suffix, *suffix, ids.prefix, *prefix, ids.middle, *middle, ids.eos]
    return [ids.prefix, *prefix, ids.suffix, *suffix, ids.middle, *middle, ids.eos]


def end_of_middle_weights(tokens: np.ndarray, ids: SpecialIds, weight: float) -> np.ndarray:
    """Per-token loss weights: `weight` on each `<|endoftext|>` that ends a FIM middle, else 1.

    An end of text closes a middle when the last `<|fim_middle|>` before it comes after the last
    `<|endoftext|>` before it. Computed from the tokens, so the packed file stores no weights.
    """
    positions = np.arange(len(tokens))
    last_middle = np.maximum.accumulate(np.where(tokens == ids.middle, positions, -1))
    eos = tokens == ids.eos
    last_eos_before = np.concatenate(
        [[-1], np.maximum.accumulate(np.where(eos, positions, -1))[:-1]]
    )
    closes_middle = eos & (last_middle > last_eos_before)
    return np.where(closes_middle, weight, 1.0).astype(np.float32)
