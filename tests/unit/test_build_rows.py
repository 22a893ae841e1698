"""The next model's training rows: repository format, FIM cuts, end-of-middle weight, packing."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from inference.build.corpus import CorpusFile
from inference.build.fim_data import FimConfig, SpecialIds, choose_split, end_of_middle_weights
from inference.build.pack import (
    compress_for_carry,
    load_packed,
    pack_corpus,
    token_byte_lengths,
    windows,
)
from inference.build.repo_rows import (
    RepoFile,
    directory_rows,
    encode_row,
    plan_rows,
    repo_row_text,
)
from inference.build.tokenizer_train import save_tokenizer, train_tokenizer
from inference.build.train import bits_per_byte
from prompts.fim import QWEN

SHIPPED_TOKENIZER = Path(__file__).resolve().parents[2] / "inference/models/default/tokenizer.json"
CODE = "import os\n\n\ndef main(argv):\n    path = os.path.join(argv[0], 'x')\n    return path\n"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(SHIPPED_TOKENIZER))
    tokenizer.encode_special_tokens = True
    return tokenizer


def test_the_tokenizer_has_the_repository_tokens_the_qwen_template_names() -> None:
    shipped = Tokenizer.from_file(str(SHIPPED_TOKENIZER))
    for token in ("<|repo_name|>", "<|file_sep|>", QWEN.file_sep_token):
        assert shipped.token_to_id(token) is not None
    assert "<|repo_name|>" in QWEN.stop_tokens
    trained = train_tokenizer([CODE] * 20, vocab_size=300)
    assert trained.token_to_id("<|repo_name|>") is not None
    assert trained.token_to_id("<|file_sep|>") is not None


def test_a_plain_row_is_the_qwen_repository_format(tok: Tokenizer) -> None:
    files = [RepoFile("pkg/a.py", "x = 1\n"), RepoFile("pkg/b.py", CODE)]
    expected = "<|repo_name|>pkg\n<|file_sep|>pkg/a.py\nx = 1\n<|file_sep|>pkg/b.py\n" + CODE
    assert repo_row_text("pkg", files) == expected
    ids = SpecialIds.from_tokenizer(tok)
    row = encode_row("pkg", files, tok, ids, random.Random(0), replace(FimConfig(), fim_rate=0.0))
    assert row[0] == ids.repo_name and row[-1] == ids.eos
    assert tok.decode(row[:-1], skip_special_tokens=False) == expected


def test_a_fim_row_cuts_its_last_file_after_its_path(tok: Tokenizer) -> None:
    ids = SpecialIds.from_tokenizer(tok)
    files = [RepoFile("pkg/a.py", "x = 1\n"), RepoFile("pkg/b.py", CODE)]
    cfg = replace(FimConfig(), fim_rate=1.0, spm_rate=0.0)
    row = encode_row("pkg", files, tok, ids, random.Random(3), cfg)
    text = tok.decode(row, skip_special_tokens=False)
    head = "<|repo_name|>pkg\n<|file_sep|>pkg/a.py\nx = 1\n<|file_sep|>pkg/b.py\n<|fim_prefix|>"
    assert text.startswith(head) and text.endswith("<|endoftext|>")
    prefix, rest = text[len(head) :].split("<|fim_suffix|>")
    suffix, middle = rest.removesuffix("<|endoftext|>").split("<|fim_middle|>")
    assert prefix + middle + suffix == CODE


def test_literal_special_token_text_in_a_source_stays_text(tok: Tokenizer) -> None:
    ids = SpecialIds.from_tokenizer(tok)
    files = [RepoFile("t.py", 'EOS = "<|endoftext|>"\n')]
    row = encode_row("t", files, tok, ids, random.Random(0), replace(FimConfig(), fim_rate=0.0))
    assert row.count(ids.eos) == 1


def test_rows_group_one_directory_and_split_long_files() -> None:
    files = [
        ("torch", RepoFile("torch/nn/b.py", "b" * 10)),
        ("torch", RepoFile("torch/fx/c.py", "c" * 10)),
        ("torch", RepoFile("torch/nn/a.py", "a" * 10)),
    ]
    rows = list(directory_rows(files, row_chars=100))
    assert [(n, [f.path for f in r]) for n, r in rows] == [
        ("torch", ["torch/fx/c.py"]),
        ("torch", ["torch/nn/a.py", "torch/nn/b.py"]),
    ]
    long = RepoFile("big.py", "".join(f"line {i}\n" for i in range(100)))
    pieces = list(plan_rows([long], row_chars=100))
    assert len(pieces) > 1 and all(len(r) == 1 and r[0].path == "big.py" for r in pieces)
    assert "".join(r[0].text for r in pieces) == long.text


def test_fim_cuts_at_line_boundaries_and_inside_lines() -> None:
    only_lines = replace(FimConfig(), empty_suffix_rate=0.0, line_span_rate=1.0, in_line_rate=0.0)
    only_in_line = replace(FimConfig(), empty_suffix_rate=0.0, line_span_rate=0.0, in_line_rate=1.0)
    rng = random.Random(0)
    for _ in range(200):
        prefix, middle, suffix = choose_split(CODE, rng, only_lines)
        assert prefix + middle + suffix == CODE
        # whole lines: the middle ends a line, the prefix ends a line or an indentation
        assert middle.endswith("\n") or not suffix
        assert prefix.endswith("\n") or not prefix.rsplit("\n", 1)[-1].strip()
    at_line_end = mid_line_starts = 0
    for _ in range(200):
        prefix, middle, suffix = choose_split(CODE, rng, only_in_line)
        assert prefix + middle + suffix == CODE and middle
        assert "\n" not in middle  # inside one line
        mid_line_starts += bool(prefix) and not prefix.endswith("\n")
        at_line_end += suffix.startswith("\n") or not suffix
    assert mid_line_starts > 150 and 100 < at_line_end < 200


def test_the_token_ending_a_middle_weighs_more_and_no_other() -> None:
    ids = SpecialIds(eos=0, prefix=1, middle=2, suffix=3, pad=4, file_sep=5, repo_name=6)
    #                 plain doc   eos  FIM: pre  x  suf  y  mid  z  eos  plain  eos
    tokens = np.array([10, 11, 0, 1, 12, 3, 13, 2, 14, 0, 15, 0])
    weights = end_of_middle_weights(tokens, ids, 3.0)
    assert weights.tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1]


def test_bits_per_byte_is_nats_per_token_times_tokens_per_byte_over_ln2() -> None:
    # 100 tokens at 1.5 nats each, spelling 400 bytes
    assert bits_per_byte(150.0, 400) == pytest.approx(1.5 * 100 / 400 / math.log(2))
    assert bits_per_byte(400 * math.log(2), 400) == pytest.approx(1.0)


def test_token_byte_lengths_count_text_bytes_not_special_tokens(tok: Tokenizer) -> None:
    lengths = token_byte_lengths(tok)
    text = "def café():\n    return 'é'\n"
    ids = tok.encode(text).ids
    assert int(lengths[ids].sum()) == len(text.encode())
    assert lengths[tok.token_to_id("<|endoftext|>")] == 0


def test_packing_writes_both_splits_and_reads_back(tmp_path: Path) -> None:
    texts = [CODE.replace("main", f"main_{i}") for i in range(30)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    save_tokenizer(tokenizer, tmp_path / "hf", 64)
    train = [CorpusFile("lib", "lib", f"lib/m{i}.py", t) for i, t in enumerate(texts[:25])]
    validation = [CorpusFile("lib", "lib/v", f"lib/v/m{i}.py", t) for i, t in enumerate(texts[25:])]
    index = pack_corpus(
        train, validation, tmp_path / "hf/tokenizer.json", tmp_path / "p", FimConfig()
    )
    tokens, read = load_packed(tmp_path / "p")
    assert read == index and tokens.dtype == np.dtype("<u2")
    splits = index["splits"]
    assert splits["train"]["end"] == splits["validation"]["start"] > 0
    assert splits["train"]["files"] == 25 and splits["validation"]["text_bytes"] > 0
    assert sum(splits["train"]["tokens_per_repo"].values()) == splits["train"]["end"]
    assert windows(0, 10, 4).tolist() == [0, 4]

    compress_for_carry(tmp_path / "p")
    carried = tmp_path / "carried"
    carried.mkdir()
    for name in ("index.json", "tokens.bin.xz"):
        (carried / name).write_bytes((tmp_path / "p" / name).read_bytes())
    unpacked, _ = load_packed(carried)
    assert np.array_equal(unpacked, tokens)


def test_the_rows_of_a_directory_stay_together_and_in_order_in_the_packed_stream(
    tmp_path: Path,
) -> None:
    long_file = "".join(f"value_{i} = {i}\n" for i in range(400))
    tokenizer = train_tokenizer([long_file, CODE] * 5, vocab_size=300)
    save_tokenizer(tokenizer, tmp_path / "hf", 64)
    train = [
        CorpusFile("lib", "lib/a", "lib/a/big.py", long_file),
        *(CorpusFile("lib", f"lib/d{i}", f"lib/d{i}/m.py", CODE) for i in range(10)),
    ]
    pack_corpus(
        train,
        [],
        tmp_path / "hf/tokenizer.json",
        tmp_path / "p",
        replace(FimConfig(), fim_rate=0.0),
        row_chars=500,
    )
    tokens, _ = load_packed(tmp_path / "p")
    text = tokenizer.decode(tokens.tolist(), skip_special_tokens=False)
    pieces = [row for row in text.split("<|repo_name|>") if row]
    big = [i for i, row in enumerate(pieces) if "lib/a/big.py" in row]
    assert len(big) > 3 and big == list(range(big[0], big[0] + len(big)))  # consecutive, in order
    assert (
        "".join(pieces[i].split("lib/a/big.py\n", 1)[1] for i in big).replace("<|endoftext|>", "")
        == long_file
    )
