"""The trainer's schedule (no torch needed) and, where torch is installed, resuming a tiny run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from inference.build.corpus import CorpusFile
from inference.build.fim_data import FimConfig
from inference.build.pack import pack_corpus
from inference.build.tokenizer_train import save_tokenizer, train_tokenizer
from inference.build.train import ModelShape, TrainConfig, lr_at, training_seconds

CFG = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)


def test_warmup_then_a_stable_peak_for_as_long_as_no_decay_is_asked() -> None:
    assert lr_at(0, 0.0, {}, CFG) == pytest.approx(1e-4)
    assert lr_at(9, 5.0, {}, CFG) == pytest.approx(1e-3)
    assert lr_at(10_000, 1e6, {}, CFG) == pytest.approx(1e-3)


def test_a_paused_step_counts_as_a_typical_one_so_a_pause_spends_no_training_time() -> None:
    assert training_seconds(2.1, None) == 2.1
    assert training_seconds(2.5, 2.0) == 2.5
    assert training_seconds(600.0, 2.0) == 2.0


def test_decay_runs_from_the_peak_to_the_floor_over_its_window() -> None:
    state = {"decay_start_s": 100.0, "decay_s": 50.0}
    assert lr_at(500, 99.0, state, CFG) == pytest.approx(1e-3)
    assert lr_at(500, 100.0, state, CFG) == pytest.approx(1e-3)
    middle = lr_at(600, 125.0, state, CFG)
    assert 1e-4 < middle < 1e-3
    assert lr_at(700, 150.0, state, CFG) == pytest.approx(1e-4)
    assert lr_at(800, 400.0, state, CFG) == pytest.approx(1e-4)


def _tiny_run(tmp_path: Path) -> tuple[Path, TrainConfig]:
    texts = [f"def f_{i}(x):\n    return x + {i}\n\n" * 8 for i in range(40)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    save_tokenizer(tokenizer, tmp_path / "work/hf", 32)
    train = [CorpusFile("lib", "lib", f"lib/m{i}.py", t) for i, t in enumerate(texts[:36])]
    val = [CorpusFile("lib", "lib/v", f"lib/v/m{i}.py", t) for i, t in enumerate(texts[36:])]
    pack_corpus(train, val, tmp_path / "work/hf/tokenizer.json", tmp_path / "packed", FimConfig())
    shape = ModelShape(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
        vocab_size=300,
        context_length=32,
    )
    cfg = replace(TrainConfig(), minutes=0.04, batch_size=2, warmup_steps=2, threads=1, shape=shape)
    return tmp_path / "work", replace(cfg, log_every=1, eval_rows=4)


def test_a_tiny_run_reports_bits_per_byte_and_resumes_from_its_compact_checkpoint(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from inference.build.train import train

    work, cfg = _tiny_run(tmp_path)
    train(work, tmp_path / "packed", cfg)
    first = json.loads((work / "train_state.json").read_text())
    assert first["final_val_bpb"] > 0 and first["step"] > 0
    assert (work / "compact.pt").stat().st_size < (work / "checkpoint.pt").stat().st_size
    assert (work / "stable.pt").exists()
    start = json.loads((work / "train_log.jsonl").read_text().splitlines()[0])
    assert start["step"] == 0 and start["val_bpb"] > first["final_val_bpb"]  # it learned

    # A fresh machine: only the compact checkpoint and the tokenizer travel.
    fresh = tmp_path / "fresh"
    (fresh / "hf").mkdir(parents=True)
    (fresh / "hf/tokenizer.json").write_bytes((work / "hf/tokenizer.json").read_bytes())
    train(fresh, tmp_path / "packed", replace(cfg, decay_minutes=0.04), work / "compact.pt")
    second = json.loads((fresh / "train_state.json").read_text())
    assert second["step"] > first["step"] and second["tokens"] > first["tokens"]
    assert second["decay_start_s"] == pytest.approx(first["elapsed_s"], abs=1.0)
    lrs = [
        json.loads(line).get("lr") for line in (fresh / "train_log.jsonl").read_text().splitlines()
    ]
    assert [lr for lr in lrs if lr][-1] < cfg.lr
