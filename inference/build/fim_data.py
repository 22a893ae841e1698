"""Training sequences with fill-in-the-middle (Bavarian et al. 2022), packed to a fixed length.

Files are cut into chunks of about one context window; a chunk becomes a FIM example with
probability `fim_rate`, in PSM order (prefix, suffix, middle) or, for a share `spm_rate` of those,
SPM order (suffix, prefix, middle). Half of the FIM splits are line-aligned spans of whole lines,
the shape an editor asks for most; the other half split at uniformly random characters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer


@dataclass(frozen=True)
class FimConfig:
    fim_rate: float = 0.5  # share of chunks turned into FIM examples
    spm_rate: float = 0.3  # share of FIM examples in SPM order
    empty_suffix_rate: float = 0.15  # share of FIM examples whose suffix is empty (end of file)
    line_span_rate: float = 0.5  # share of the other FIM splits on whole-line boundaries
    max_span_lines: int = 12  # longest line-aligned middle
    chunk_chars: int = 3000  # about 1,000 tokens of Python at vocab 8192


@dataclass(frozen=True)
class SpecialIds:
    eos: int
    prefix: int
    middle: int
    suffix: int
    pad: int

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


def choose_split(text: str, rng: random.Random, cfg: FimConfig) -> tuple[str, str, str]:
    if rng.random() < cfg.empty_suffix_rate:
        # The cursor at the end of what is written so far: the most common case in an editor.
        cut = rng.randrange(len(text) // 4, len(text))
        newline = text.rfind("\n", 0, cut)
        if newline > 0 and rng.random() < 0.5:
            cut = newline + 1 + len(text[newline + 1 :]) - len(text[newline + 1 :].lstrip(" \t"))
        return text[:cut], text[cut:], ""
    if rng.random() < cfg.line_span_rate:
        lines = text.splitlines(keepends=True)
        if len(lines) >= 2:
            first = rng.randrange(len(lines))
            count = min(len(lines) - first, 1 + int(rng.expovariate(1 / 2.5)), cfg.max_span_lines)
            # Start the middle after the line's indentation half of the time, as when the
            # cursor sits on an indented empty line.
            line = lines[first]
            indent = len(line) - len(line.lstrip(" \t"))
            cut = indent if rng.random() < 0.5 else 0
            head = "".join(lines[:first]) + line[:cut]
            middle = line[cut:] + "".join(lines[first + 1 : first + count])
            tail = "".join(lines[first + count :])
            return head, middle, tail
    a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
    return text[:a], text[a:b], text[b:]


def encode_example(
    chunk: str, tok: Tokenizer, ids: SpecialIds, rng: random.Random, cfg: FimConfig
) -> list[int]:
    if rng.random() >= cfg.fim_rate or len(chunk) < 8:
        return [*tok.encode(chunk).ids, ids.eos]
    prefix, middle, suffix = choose_split(chunk, rng, cfg)
    p, m, s = (tok.encode(x).ids for x in (prefix, middle, suffix))
    if rng.random() < cfg.spm_rate:
        return [ids.suffix, *s, ids.prefix, *p, ids.middle, *m, ids.eos]
    return [ids.prefix, *p, ids.suffix, *s, ids.middle, *m, ids.eos]


def epoch_tokens(
    texts: list[str], tok: Tokenizer, seed: int, cfg: FimConfig, seq_len: int
) -> np.ndarray:
    """One shuffled epoch, FIM-transformed and packed into rows of seq_len + 1 tokens."""
    rng = random.Random(seed)
    ids = SpecialIds.from_tokenizer(tok)
    chunks = [c for t in texts for c in split_chunks(t, cfg.chunk_chars)]
    rng.shuffle(chunks)
    stream: list[int] = []
    for chunk in chunks:
        stream.extend(encode_example(chunk, tok, ids, rng, cfg))
    rows = len(stream) // (seq_len + 1)
    return np.asarray(stream[: rows * (seq_len + 1)], dtype=np.int32).reshape(rows, seq_len + 1)
