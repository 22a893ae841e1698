"""`python -m inference.build STAGE --work DIR` (`flashcode model build`): the build pipeline.

Stages, each reading what the one before wrote in the work directory:
corpus (work/corpus/: train.jsonl, validation.jsonl, report.json) -> tokenizer (work/hf/) ->
pack (work/packed/: tokens.bin, its .xz to carry, index.json) -> train (work/checkpoint.pt,
compact.pt, stable.pt, hf/) -> export (work/onnx/, then --out) -> card (MODEL_CARD.md in --out).
`all` runs them in order and skips corpus, tokenizer and pack when their output exists, so a
resumed run reuses them. `--corpus-from DIR` links another work directory's corpus (and, with
the same vocabulary and FIM mix, its tokenizer and packed file) instead of building them again.

The recipe's knobs (`--shape`, `--vocab`, `--optimizer`, `--fim-rate`, `--max-tokens`) serve
the ablations (ablate.py); `--gpu` is the larger model a lent GPU trains (`flashcode model build
--gpu-minutes`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from inference.build.fim_data import FimConfig
from inference.build.train import OPTIMIZERS, SHAPES, ModelShape, TrainConfig

GPU_BATCH_SIZE = 32  # rows of 1,024 tokens per step on a lent GPU
GPU_DECAY_SHARE = 0.2  # of a GPU run's minutes, spent in the decay

STAGES = ("corpus", "tokenizer", "pack", "train", "export", "card")


def _read_files(path: Path) -> list:  # type: ignore[type-arg]
    from inference.build.corpus import CorpusFile

    return [CorpusFile(**json.loads(line)) for line in path.read_text().splitlines()]


def stage_corpus(work: Path, near: bool = True) -> dict:  # type: ignore[type-arg]
    from inference.build.corpus import build_corpus
    from inference.build.sources import discover_sources

    sources, refused = discover_sources()
    train, validation, report = build_corpus(sources, near=near)
    report["refused"] = refused
    out = work / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    for name, files in (("train", train), ("validation", validation)):
        with (out / f"{name}.jsonl").open("w") as f:
            for item in files:
                f.write(json.dumps(asdict(item)) + "\n")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def stage_tokenizer(work: Path, shape: ModelShape) -> None:
    from inference.build.tokenizer_train import save_tokenizer, train_tokenizer

    train = _read_files(work / "corpus" / "train.jsonl")
    tok = train_tokenizer((f.text for f in train), shape.vocab_size)
    save_tokenizer(tok, work / "hf", shape.context_length)


def stage_pack(work: Path, cfg: TrainConfig) -> dict:  # type: ignore[type-arg]
    from inference.build.pack import compress_for_carry, pack_corpus

    corpus = work / "corpus"
    index = pack_corpus(
        _read_files(corpus / "train.jsonl"),
        _read_files(corpus / "validation.jsonl"),
        work / "hf" / "tokenizer.json",
        work / "packed",
        cfg.fim,
        seed=cfg.seed,
    )
    compress_for_carry(work / "packed")  # what a device run carries
    # Token counts per source go into the corpus report, for the card.
    report_path = corpus / "report.json"
    report = json.loads(report_path.read_text())
    report["packed"] = index["splits"]
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return index


def link_corpus(source: Path, work: Path, same_tokens: bool) -> None:
    """Use `source`'s corpus in `work` (symlinks); with `same_tokens` (same vocabulary and FIM
    mix) also its tokenizer and packed file, so that nothing is rebuilt."""
    linked = ["corpus/train.jsonl", "corpus/validation.jsonl"]
    # report.json is copied: pack writes this run's token counts into it, for the card.
    copied = ["corpus/report.json"]
    if same_tokens:
        linked += ["packed", "hf/tokenizer.json"]
        copied += ["hf/tokenizer_config.json", "hf/special_tokens_map.json"]
    for name in linked + copied:
        target, here = (source / name).resolve(), work / name
        if not target.exists():
            raise SystemExit(f"--corpus-from: {target} does not exist; build it there first")
        here.parent.mkdir(parents=True, exist_ok=True)
        if here.exists() or here.is_symlink():
            continue
        if name in copied:
            here.write_bytes(target.read_bytes())
        else:
            here.symlink_to(target)


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The training config the flags ask for."""
    shape = SHAPES["gpu" if args.gpu else args.shape]
    if args.vocab:
        shape = replace(shape, vocab_size=args.vocab)
    cfg = TrainConfig(
        minutes=args.minutes,
        decay_minutes=args.decay_minutes,
        threads=args.threads,
        optimizer=args.optimizer,
        max_tokens=args.max_tokens,
        shape=shape,
    )
    if args.fim_rate is not None:
        cfg = replace(cfg, fim=replace(FimConfig(), fim_rate=args.fim_rate))
    if args.gpu:
        cfg = replace(
            cfg,
            batch_size=GPU_BATCH_SIZE,
            decay_minutes=args.decay_minutes or args.minutes * GPU_DECAY_SHARE,
        )
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference.build")
    parser.add_argument("stage", choices=[*STAGES, "all"])
    parser.add_argument("--work", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--minutes", type=float, default=90.0)
    parser.add_argument("--decay-minutes", type=float, default=0.0)
    parser.add_argument("--resume-from", type=Path, default=None, help="a compact checkpoint")
    parser.add_argument("--out", type=Path, default=None, help="where the exported model goes")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--no-near-dedup", action="store_true")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--vocab", type=int, default=0, help="vocabulary size (default: 8,192)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    parser.add_argument("--fim-rate", type=float, default=None, help="share of FIM rows")
    parser.add_argument("--max-tokens", type=int, default=0, help="stop at this many tokens")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="the GPU recipe: the 31M-parameter shape, batch 32, the last fifth decayed",
    )
    parser.add_argument("--corpus-from", type=Path, default=None, help="a built work directory")
    parser.add_argument("--notes", type=Path, default=None, help="card: a Markdown notes file")
    parser.add_argument(
        "--ablations", type=Path, default=None, help="card: the ablation table (ablations.md)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cfg = config_from(args)
    work: Path = args.work
    if args.corpus_from is not None:
        default = TrainConfig()
        link_corpus(
            args.corpus_from,
            work,
            same_tokens=cfg.shape.vocab_size == default.shape.vocab_size and cfg.fim == default.fim,
        )
    every = args.stage == "all"
    if args.stage == "corpus" or (every and not (work / "corpus" / "report.json").exists()):
        print(json.dumps(stage_corpus(work, near=not args.no_near_dedup)["dedup"]))
    if args.stage == "tokenizer" or (every and not (work / "hf" / "tokenizer.json").exists()):
        stage_tokenizer(work, cfg.shape)
    if args.stage == "pack" or (every and not (work / "packed" / "index.json").exists()):
        print(json.dumps(stage_pack(work, cfg)["splits"]))
    if args.stage in ("train", "all"):
        from inference.build.train import train

        train(work, work / "packed", cfg, resume_from=args.resume_from)
    if args.stage in ("export", "all"):
        from inference.build.export import export_default_model

        export_default_model(work, args.out or work / "export")
    if args.stage in ("card", "all"):
        from inference.build.card import write_card

        scores_file = work / "scores.json"
        scores = json.loads(scores_file.read_text()) if scores_file.exists() else {}
        notes = args.notes.read_text() if args.notes else ""
        ablations = args.ablations.read_text() if args.ablations else ""
        print(write_card(work, args.out or work / "export", scores, notes, ablations))


if __name__ == "__main__":
    main()
