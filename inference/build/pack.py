"""The corpus as one packed token file a GPU machine can carry: `tokens.bin` + `index.json`.

`tokens.bin` is the token ids of every repository row, end to end, as little-endian uint16 (the
vocabulary stays under 65,536), train rows first, then validation rows; `index.json` says where
each split starts and ends, how many UTF-8 bytes of text each holds, the tokenizer's hash and the
settings the rows were made with. Training reads windows of it through a numpy memmap, so the file
never has to fit in memory; `compress_for_carry` writes the xz form a device run carries (the
full file is over the 64 MiB a run takes along). FIM is decided once, here, with a fixed seed:
every epoch sees the same FIM rows, the price of a file that is written once and carried as it is.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import random
import shutil
from dataclasses import asdict
from itertools import groupby
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from inference.build.corpus import CorpusFile
from inference.build.fim_data import FimConfig, SpecialIds
from inference.build.repo_rows import RepoFile, directory_rows, encode_row

TOKENS_FILE = "tokens.bin"
CARRY_FILE = "tokens.bin.xz"  # what travels to a GPU machine: about a third of tokens.bin
INDEX_FILE = "index.json"
ROW_CHARS = 3000  # about one 1,024-token context window of Python at vocab 8192


def repo_name_of(file: CorpusFile) -> str:
    return "cpython" if file.source == "stdlib" else file.source


def token_byte_lengths(tok: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for: byte-level BPE spells one byte per character.

    Special tokens stand for no text and count 0, so bits per byte measures the code alone.
    """
    vocab = tok.get_vocab(with_added_tokens=True)
    lengths = np.zeros(max(vocab.values()) + 1, dtype=np.int64)
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    for token, index in vocab.items():
        lengths[index] = 0 if token in special else len(token)
    return lengths


def encode_split(
    files: list[CorpusFile], tok: Tokenizer, cfg: FimConfig, seed: int, row_chars: int
) -> tuple[np.ndarray, int, dict[str, int]]:
    """(tokens, rows, tokens per repository name) of one split, directories in a seeded order."""
    ids = SpecialIds.from_tokenizer(tok)
    rng = random.Random(seed)
    named = [(repo_name_of(f), RepoFile(f.relpath, f.text)) for f in files]
    # Directories are shuffled, their rows are not: a training window that spans two rows then
    # sees the previous piece of the same file, or a neighbour, rather than unrelated code.
    directories = [
        list(group)
        for _, group in groupby(
            directory_rows(named, row_chars),
            key=lambda item: (item[0], str(PurePosixPath(item[1][0].path).parent)),
        )
    ]
    rng.shuffle(directories)
    rows = [row for directory in directories for row in directory]
    chunks: list[np.ndarray] = []
    per_repo: dict[str, int] = {}
    for name, row in rows:
        chunks.append(np.asarray(encode_row(name, row, tok, ids, rng, cfg), dtype=np.uint16))
        per_repo[name] = per_repo.get(name, 0) + len(chunks[-1])
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint16)
    return tokens, len(rows), per_repo


def pack_corpus(
    train: list[CorpusFile],
    validation: list[CorpusFile],
    tokenizer_path: Path,
    out_dir: Path,
    cfg: FimConfig,
    seed: int = 0,
    row_chars: int = ROW_CHARS,
) -> dict[str, Any]:
    """Write tokens.bin and index.json into out_dir; returns the index."""
    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.encode_special_tokens = True  # literal "<|endoftext|>" in a source file is text
    assert tok.get_vocab_size() <= 65536, "uint16 tokens need a vocabulary under 65,536"
    out_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, Any] = {}
    start = 0
    tmp = out_dir / (TOKENS_FILE + ".tmp")
    lengths = token_byte_lengths(tok)
    with tmp.open("wb") as out:
        for split, files, split_seed in (
            ("train", train, seed),
            ("validation", validation, seed + 1),
        ):
            tokens, rows, per_repo = encode_split(files, tok, cfg, split_seed, row_chars)
            out.write(tokens.astype("<u2").tobytes())
            splits[split] = {
                "start": start,
                "end": start + len(tokens),
                "rows": rows,
                "files": len(files),
                "text_bytes": sum(len(f.text.encode()) for f in files),
                "tokens_per_repo": per_repo,
                "token_bytes": int(lengths[tokens].sum()) if len(tokens) else 0,
            }
            start += len(tokens)
    tmp.replace(out_dir / TOKENS_FILE)
    index = {
        "dtype": "uint16",
        "vocab_size": tok.get_vocab_size(),
        "tokenizer_sha256": hashlib.sha256(tokenizer_path.read_bytes()).hexdigest(),
        "row_chars": row_chars,
        "seed": seed,
        "fim": asdict(cfg),
        "splits": splits,
    }
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


def compress_for_carry(directory: Path) -> Path:
    """tokens.bin.xz beside tokens.bin: token streams compress to ~0.3 with xz, zlib only ~0.45.

    The device tool carries at most 64 MiB; the full corpus's tokens.bin is about 100 MB.
    """
    target = directory / CARRY_FILE
    tmp = target.with_suffix(".tmp")
    with (directory / TOKENS_FILE).open("rb") as src, lzma.open(tmp, "wb", preset=6) as out:
        shutil.copyfileobj(src, out, length=1 << 24)
    tmp.replace(target)
    return target


def _uncompress_if_carried(directory: Path) -> None:
    if (directory / TOKENS_FILE).exists() or not (directory / CARRY_FILE).exists():
        return
    tmp = directory / (TOKENS_FILE + ".tmp")
    with lzma.open(directory / CARRY_FILE, "rb") as src, tmp.open("wb") as out:
        shutil.copyfileobj(src, out, length=1 << 24)
    tmp.replace(directory / TOKENS_FILE)


def load_packed(directory: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(memmapped tokens, index) of a packed corpus; unpacks tokens.bin.xz if that came alone."""
    _uncompress_if_carried(directory)
    index = json.loads((directory / INDEX_FILE).read_text())
    tokens = np.memmap(directory / TOKENS_FILE, dtype="<u2", mode="r")
    assert len(tokens) == index["splits"]["validation"]["end"], "tokens.bin and index.json disagree"
    return tokens, index


def windows(start: int, end: int, length: int) -> np.ndarray:
    """Start offsets of the non-overlapping windows of `length` tokens in [start, end)."""
    return np.arange(start, end - length + 1, length, dtype=np.int64)
