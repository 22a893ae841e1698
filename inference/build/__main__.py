"""`python -m inference.build STAGE --work DIR` (`flashcode model build`): the build pipeline.

Stages, each reading what the one before wrote in the work directory:
corpus (work/corpus/: train.jsonl, validation.jsonl, report.json) -> tokenizer (work/hf/) ->
pack (work/packed/: tokens.bin, its .xz to carry, index.json) -> train (work/checkpoint.pt,
compact.pt, stable.pt, hf/) -> export (work/onnx/, then --out) -> card (MODEL_CARD.md in --out).
`all` runs them in order and skips corpus, tokenizer and pack when their output exists, so a
resumed run reuses them.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from inference.build.train import ModelShape, TrainConfig

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


def main(argv: list[str] | None = None) -> None:
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
    args = parser.parse_args(argv)
    cfg = TrainConfig(minutes=args.minutes, decay_minutes=args.decay_minutes, threads=args.threads)
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    work: Path = args.work
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
        print(write_card(work, args.out or work / "export", scores))


if __name__ == "__main__":
    main()
