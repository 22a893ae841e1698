"""`python -m inference.build train|export|all --work DIR --minutes N` (`flashcode model build`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference.build.train import TrainConfig, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference.build")
    parser.add_argument("stage", choices=["train", "export", "all"])
    parser.add_argument("--work", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--minutes", type=float, default=90.0)
    parser.add_argument("--out", type=Path, default=None, help="where the shipped model goes")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.stage in ("train", "all"):
        train(args.work, TrainConfig(minutes=args.minutes, threads=args.threads))
    if args.stage in ("export", "all"):
        from inference.build.export import export_default_model

        export_default_model(args.work, args.out or args.work / "export")


if __name__ == "__main__":
    main()
