"""`flashcode eval bpb`: the shipped model's loss on texts, in bits per byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bpb import bits_per_byte, log_softmax_at, main, read_texts
from tests.conftest import e2e_model_dir

CODE = "def add(a, b):\n    return a + b\n\n\nclass Point:\n    x: int = 0\n    y: int = 0\n" * 8


def test_log_softmax_picks_each_rows_token() -> None:
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], dtype=np.float32))
    assert np.allclose(log_softmax_at(logits, [0, 2]), np.log([0.5, 0.8]), atol=1e-5)


def test_code_scores_far_below_random_bytes(tmp_path: Path) -> None:
    code = bits_per_byte(e2e_model_dir(), [CODE], size=32, limit=96, batch=2)
    assert code["tokens"] == 93  # three windows of 32, each scoring 31 tokens
    noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(400))
    random_text = bits_per_byte(e2e_model_dir(), [noise], size=32, limit=96, batch=2)
    assert 0 < code["bits_per_byte"] < random_text["bits_per_byte"]


def test_texts_come_from_a_corpus_jsonl_or_a_plain_file(tmp_path: Path) -> None:
    corpus = tmp_path / "validation.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in ("a = 1\n", "b = 2\n")) + "\n")
    plain = tmp_path / "code.py"
    plain.write_text(CODE)
    assert read_texts(corpus) == ["a = 1\n", "b = 2\n"]
    assert read_texts(plain) == [CODE]


def test_a_missing_corpus_says_how_to_build_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--texts", str(tmp_path / "none.jsonl")])
    assert "python -m inference.build corpus" in capsys.readouterr().err


def test_windows_spread_over_every_text_and_a_source_can_be_left_out(tmp_path: Path) -> None:
    from benchmarks.bpb import windows

    class Characters:
        def encode(self, text: str) -> list[int]:
            return [ord(c) for c in text]

    texts = ["a" * 40, "b" * 40, "c" * 40]  # four windows of 10 in each
    picked = list(windows(texts, Characters(), size=10, limit=30))  # type: ignore[arg-type]
    assert [chr(w[0]) for w in picked] == ["a", "b", "c"]  # not the first text's three windows
    assert all(len(w) == 10 for w in picked)
    corpus = tmp_path / "validation.jsonl"
    rows = [{"source": "stdlib", "text": "old"}, {"source": "numpy", "text": "new"}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_texts(corpus, ["stdlib"]) == ["new"]
