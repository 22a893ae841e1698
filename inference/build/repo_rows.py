"""Repository-level training rows in the Qwen2.5-Coder format, FIM on the last file of a row.

A row is `<|repo_name|>name\n`, then `<|file_sep|>path\n` + text for each file, then
`<|endoftext|>`. Files of one directory go together, in path order, so that the model sees its
neighbours before a file and learns to copy from them: the shape flashcode's repository-level
prompt has (prompts/budget.py: snippets, each after `<|file_sep|>`, then `<|file_sep|>path\n`
`<|fim_prefix|>`...). A FIM row keeps the earlier files as they are and cuts the last one:
`<|file_sep|>path\n<|fim_prefix|>pre<|fim_suffix|>suf<|fim_middle|>mid<|endoftext|>` (SPM puts
the suffix first). Rows are about `row_chars` long; a longer file is cut at line boundaries into
pieces, each a row of its own under the same path.

Special tokens are inserted as ids, never parsed out of the text: the sources contain the literal
strings (transformers' tokenizers, for one), and those must stay text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import PurePosixPath

from tokenizers import Tokenizer

from inference.build.fim_data import FimConfig, SpecialIds, choose_split, fim_ids, split_chunks

REPO_NAME = "<|repo_name|>"
FILE_SEP = "<|file_sep|>"


@dataclass(frozen=True)
class RepoFile:
    path: str
    text: str


def repo_row_text(name: str, files: list[RepoFile]) -> str:
    """The plain (non-FIM) row as text: what the token ids of `encode_row` spell."""
    return f"{REPO_NAME}{name}\n" + "".join(f"{FILE_SEP}{f.path}\n{f.text}" for f in files)


def plan_rows(files: list[RepoFile], row_chars: int) -> Iterator[list[RepoFile]]:
    """Pack files (in the given order) into rows of about row_chars; split longer files."""
    row: list[RepoFile] = []
    size = 0
    for file in files:
        if len(file.text) > row_chars:
            if row:
                yield row
                row, size = [], 0
            for piece in split_chunks(file.text, row_chars):
                yield [RepoFile(file.path, piece)]
            continue
        if row and size + len(file.text) > row_chars:
            yield row
            row, size = [], 0
        row.append(file)
        size += len(file.text)
    if row:
        yield row


def directory_rows(
    files: list[tuple[str, RepoFile]], row_chars: int
) -> Iterator[tuple[str, list[RepoFile]]]:
    """(repo name, row) for files given as (repo name, file), one directory's files together."""

    def key(item: tuple[str, RepoFile]) -> tuple[str, str]:
        return item[0], str(PurePosixPath(item[1].path).parent)

    for (name, _directory), members in groupby(sorted(files, key=key), key=key):
        ordered = sorted((f for _, f in members), key=lambda f: f.path)
        for row in plan_rows(ordered, row_chars):
            yield name, row


def encode_row(
    name: str,
    files: list[RepoFile],
    tok: Tokenizer,
    ids: SpecialIds,
    rng: random.Random,
    cfg: FimConfig,
) -> list[int]:
    """The row's token ids; with probability cfg.fim_rate its last file is a FIM example."""

    def text_ids(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids if text else []

    out = [ids.repo_name, *text_ids(f"{name}\n")]
    *context, last = files
    for f in context:
        out += [ids.file_sep, *text_ids(f"{f.path}\n{f.text}")]
    out += [ids.file_sep, *text_ids(f"{last.path}\n")]
    if rng.random() < cfg.fim_rate and len(last.text) >= 8:
        prefix, middle, suffix = choose_split(last.text, rng, cfg)
        spm = rng.random() < cfg.spm_rate
        return out + fim_ids(text_ids(prefix), text_ids(middle), text_ids(suffix), ids, spm)
    return [*out, *text_ids(last.text), ids.eos]
