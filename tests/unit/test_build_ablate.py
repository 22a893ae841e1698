"""The ablation runner's plumbing (no training): each variant's flags are real build flags that
change what the variant says, the corpus is shared without being written through, and the
table reads its rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.build.__main__ import build_parser, config_from, link_corpus
from inference.build.ablate import VARIANTS, build_command, table


def test_every_variant_but_the_base_changes_the_training_config() -> None:
    base = config_from(build_parser().parse_args(["train"]))
    configs = {
        name: config_from(build_parser().parse_args(["train", *flags]))
        for name, (_, flags) in VARIANTS.items()
    }
    assert configs["base"] == base
    changed = [name for name, cfg in configs.items() if cfg != base]
    assert sorted(changed) == sorted(set(VARIANTS) - {"base"})
    assert configs["vocab-16k"].shape.vocab_size == 16384
    assert configs["muon"].optimizer == "muon"


def test_a_variant_command_trains_to_the_token_budget_on_the_base_corpus(tmp_path: Path) -> None:
    command = build_command(tmp_path / "base", tmp_path / "w", 1000, ["--vocab", "4096"])
    args = build_parser().parse_args(command[3:])
    assert args.stage == "all" and args.max_tokens == 1000
    assert args.corpus_from == tmp_path / "base" and args.vocab == 4096


def _base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    for name in ("corpus/train.jsonl", "corpus/validation.jsonl", "packed/index.json"):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text("{}\n")
    (base / "corpus/report.json").write_text(json.dumps({"dedup": {}}))
    (base / "hf").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (base / "hf" / name).write_text("{}")
    return base


def test_a_linked_corpus_shares_the_data_but_not_the_report(tmp_path: Path) -> None:
    base, work = _base(tmp_path), tmp_path / "variant"
    link_corpus(base, work, same_tokens=True)
    assert (work / "packed").resolve() == (base / "packed").resolve()
    assert (work / "hf/tokenizer.json").is_symlink()
    (work / "corpus/report.json").write_text("changed by this variant's pack")
    assert json.loads((base / "corpus/report.json").read_text()) == {"dedup": {}}
    link_corpus(base, work, same_tokens=True)  # again, as a resumed run does: nothing breaks

    other = tmp_path / "vocab-4k"
    link_corpus(base, other, same_tokens=False)  # its own tokenizer and packed file
    assert (other / "corpus/train.jsonl").is_symlink()
    assert not (other / "packed").exists() and not (other / "hf").exists()


def test_a_missing_base_says_what_to_build(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="build it there first"):
        link_corpus(tmp_path / "nowhere", tmp_path / "w", same_tokens=True)


def test_the_table_has_a_row_per_variant_with_its_scores() -> None:
    row = {
        "variant": "muon", "changes": "Muon", "parameters": 6_800_000, "tokens": 2_000_000,
        "train_minutes": 9.8, "tokens_per_s": 3400, "val_bpb": 2.1234,
        "humaneval_single_exact": 0.005, "humaneval_single_pass_at_1": 0.02,
    }  # fmt: skip
    lines = table([row]).splitlines()
    assert len(lines) == 3
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[0] == "muon" and cells[2:5] == ["6,800,000", "2,000,000", "9.8"]
    assert cells[5:] == ["3,400", "2.123", "0.005 / 0.020"]


def test_the_card_carries_the_ablation_table_and_the_optimizer(tmp_path: Path) -> None:
    from dataclasses import asdict

    from inference.build.card import write_card
    from inference.build.train import TrainConfig

    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    config = asdict(TrainConfig(optimizer="muon")) | {"parameters": 6_822_144}
    (work / "train_config.json").write_text(json.dumps(config))
    (work / "train_state.json").write_text(
        json.dumps({"tokens": 2_000_000, "step": 488, "epoch": 0, "elapsed_s": 600.0})
    )
    (work / "train_log.jsonl").write_text(
        json.dumps({"step": 488, "tokens": 2_000_000, "val_loss": 4.1, "val_bpb": 1.9}) + "\n"
    )
    ablations = "| variant | changes |\n| --- | --- |\n| muon | Muon |\n"
    card = write_card(work, out, {}, ablations=ablations).read_text()
    assert "## Ablations" in card and "| muon | Muon |" in card
    assert "- Muon for the hidden matrices and AdamW" in card
    assert "Validation bits per byte: 1.900." in card
