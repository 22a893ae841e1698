"""The trainer's schedule (no torch needed) and, where torch is installed, resuming a tiny run."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from inference.build.corpus import CorpusFile
from inference.build.fim_data import FimConfig
from inference.build.pack import pack_corpus
from inference.build.tokenizer_train import save_tokenizer, train_tokenizer
from inference.build.train import (
    SHAPES,
    ModelShape,
    TrainConfig,
    lr_at,
    parameter_count,
    stable_state,
    training_seconds,
)

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


def test_a_run_resumed_from_the_stable_checkpoint_is_not_bound_to_the_old_decay() -> None:
    state = {"step": 9, "elapsed_s": 50.0, "decay_start_s": 60.0, "decay_s": 20.0}
    assert stable_state(state) == {"step": 9, "elapsed_s": 50.0}
    assert lr_at(900, 75.0, stable_state(state), CFG) == CFG.lr  # still the peak
    assert state["decay_start_s"] == 60.0  # the running state keeps its schedule


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


def test_the_named_shapes_hold_what_their_ablations_and_the_gpu_run_need() -> None:
    tiny, deep, gpu = (parameter_count(SHAPES[n]) for n in ("tiny", "deep", "gpu"))
    assert 6_500_000 < tiny < 7_000_000
    assert abs(deep - tiny) / tiny < 0.03  # depth vs width at equal parameters
    assert SHAPES["deep"].num_layers == 2 * SHAPES["tiny"].num_layers
    assert 30_000_000 <= gpu <= 60_000_000  # the size for a lent GPU
    for shape in SHAPES.values():
        assert shape.hidden_size % shape.num_heads == 0
        assert shape.num_heads % shape.num_kv_heads == 0


def test_the_build_flags_become_the_training_config() -> None:
    from inference.build.__main__ import GPU_BATCH_SIZE, config_from

    def parsed(*flags: str) -> TrainConfig:
        defaults = {
            "minutes": 30.0, "decay_minutes": 0.0, "threads": 0, "optimizer": "adamw",
            "max_tokens": 0, "shape": "tiny", "vocab": 0, "fim_rate": None, "gpu": False,
            "batch_size": None,
        }  # fmt: skip
        values = dict(zip(flags[::2], flags[1::2], strict=True))
        return config_from(argparse.Namespace(**(defaults | values)))

    assert parsed() == replace(TrainConfig(), minutes=30.0)
    assert parsed("vocab", 4096).shape.vocab_size == 4096
    assert parsed("shape", "deep").shape == SHAPES["deep"]
    assert parsed("fim_rate", 0.8).fim.fim_rate == 0.8
    assert parsed("fim_rate", 0.8).fim.spm_rate == FimConfig().spm_rate
    gpu = parsed("gpu", True)
    assert gpu.shape == SHAPES["gpu"] and gpu.batch_size == GPU_BATCH_SIZE
    assert gpu.decay_minutes == pytest.approx(6.0)  # the last fifth of its 30 minutes


def test_a_run_with_a_token_budget_and_muon_stops_there_and_resumes_its_optimizer(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from tokenizers import Tokenizer

    from inference.build.fim_data import SpecialIds
    from inference.build.train import Optimizers, _model_and_optimizer, train

    work, cfg = _tiny_run(tmp_path)
    budget = 5 * cfg.batch_size * cfg.shape.context_length
    cfg = replace(cfg, minutes=5.0, optimizer="muon", max_tokens=budget)
    train(work, tmp_path / "packed", cfg)
    state = json.loads((work / "train_state.json").read_text())
    assert state["tokens"] == budget and state["elapsed_s"] < 60
    config = json.loads((work / "train_config.json").read_text())
    assert config["optimizer"] == "muon"
    assert config["parameters"] == parameter_count(cfg.shape)

    ids = SpecialIds.from_tokenizer(Tokenizer.from_file(str(work / "hf/tokenizer.json")))
    model, opt = _model_and_optimizer(cfg, ids, "cpu")
    assert isinstance(opt, Optimizers)
    muon, adamw = opt.parts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    embedding = model.get_input_embeddings().weight
    assert all(p is not embedding for g in muon.param_groups for p in g["params"])
    assert all(p.dim() == 2 for g in muon.param_groups for p in g["params"])
    # A fresh machine resumes both optimizers' moments from the compact checkpoint.
    fresh = tmp_path / "fresh"
    (fresh / "hf").mkdir(parents=True)
    (fresh / "hf/tokenizer.json").write_bytes((work / "hf/tokenizer.json").read_bytes())
    train(fresh, tmp_path / "packed", replace(cfg, max_tokens=2 * budget), work / "compact.pt")
    resumed = json.loads((fresh / "train_state.json").read_text())
    assert resumed["tokens"] == 2 * budget and resumed["step"] == 2 * state["step"]


def test_a_gpu_run_comes_back_as_the_same_model_within_the_device_tools_limits(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from transformers import Qwen2ForCausalLM

    from inference.build.carry import MAX_BYTES, MAX_FILES, pack_for_return, unpack
    from inference.build.train import train

    work, cfg = _tiny_run(tmp_path)
    hf_dir = train(work, tmp_path / "packed", cfg)
    returned = pack_for_return(work, tmp_path / "out")
    assert len(returned) <= MAX_FILES and sum(p.stat().st_size for p in returned) <= MAX_BYTES
    home = unpack(tmp_path / "out", tmp_path / "home", tokenizer_from=work)
    assert (home / "tokenizer.json").exists()
    assert (tmp_path / "home/train_state.json").read_text() == (
        work / "train_state.json"
    ).read_text()
    rows = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        trained = Qwen2ForCausalLM.from_pretrained(hf_dir).eval()(rows).logits
        back = Qwen2ForCausalLM.from_pretrained(home).eval()(rows).logits
    # The weights travelled in bf16: the same model up to that rounding.
    assert torch.equal(trained.argmax(-1), back.argmax(-1))
    assert float((trained - back).abs().max()) < 0.05 * float(trained.abs().max())
