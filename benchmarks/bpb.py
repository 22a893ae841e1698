"""`flashcode eval bpb`: a shipped ONNX model's validation loss in bits per byte (prints JSON).

Training reports bits per byte on the held-out packages (inference/build/corpus.py's
VALIDATION_GROUPS); this measures the exported model on the same texts through onnxruntime, so
the shipped int4 model, its fp32 export and a model of another tokenizer compare on one scale.

Texts are cut into windows of `--window` tokens, and `--tokens` worth of them are taken evenly
spread over all the texts (the first files alone would measure one package). Each window's first
token is given and every later one is scored, teacher-forced, one decode step per token with
`--batch` windows decoded together. Bytes are those of the scored tokens' text (UTF-8).
`--skip-sources stdlib` leaves out texts of a source a model was trained on: v1 of the default
model saw 98% of the standard library, so its held-out packages are not unseen for it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.model import load_model_info
from inference.router import default_model_dir
from inference.runners import Runner, make_runner
from inference.session import choose_provider, physical_cores
from inference.tokenizer import Tokenizer

DEFAULT_TEXTS = Path("runs/v2/corpus/validation.jsonl")


def read_texts(path: Path, skip_sources: Sequence[str] = ()) -> list[str]:
    """The "text" of each JSON line (the corpus format), but those whose "source" is in
    `skip_sources`; or the whole file when it is not JSONL."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [raw]
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [row["text"] for row in rows if row.get("source") not in skip_sources]


def windows(
    texts: Sequence[str], tokenizer: Tokenizer, size: int, limit: int
) -> Iterator[list[int]]:
    """Windows of exactly `size` tokens, `limit` tokens in all, evenly spread over every window
    of every text (the same ones each run)."""
    every: list[list[int]] = []
    for text in texts:
        ids = tokenizer.encode(text)
        every += [ids[start : start + size] for start in range(0, len(ids) - size + 1, size)]
    wanted = min(len(every), limit // size)
    if wanted <= 0:
        return
    for index in np.linspace(0, len(every) - 1, wanted).astype(int):
        yield every[int(index)]


def log_softmax_at(logits: np.ndarray, tokens: Sequence[int]) -> np.ndarray:
    """log p(token) of each row's token under softmax(logits row)."""
    rows = logits.astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    norm = np.log(np.exp(rows - top).sum(axis=1)) + top[:, 0]
    return np.asarray(rows[np.arange(len(tokens)), list(tokens)] - norm)


def score_batch(runner: Runner, batch: Sequence[list[int]]) -> float:
    """Nats of every token after the first, over windows of equal length decoded together."""
    slots = list(range(len(batch)))
    nats = 0.0
    logits = np.stack([runner.prefill(slot, row[:1], None, 0) for slot, row in enumerate(batch)])
    for position in range(1, len(batch[0])):
        targets = [row[position] for row in batch]
        nats -= float(log_softmax_at(logits, targets).sum())
        if position + 1 < len(batch[0]):
            logits = runner.decode(slots, targets)
    for slot in slots:
        runner.release(slot)
    return nats


def bits_per_byte(
    model_dir: Path, texts: Sequence[str], size: int, limit: int, batch: int
) -> dict[str, Any]:
    info = load_model_info(model_dir)
    tokenizer = Tokenizer.from_model_dir(info.path)
    runner = make_runner(info, choose_provider("cpu"), physical_cores(), batch, size + 1)
    started = time.perf_counter()
    nats = 0.0
    n_bytes = tokens = 0
    pending: list[list[int]] = []
    for window in windows(texts, tokenizer, size, limit):
        pending.append(window)
        n_bytes += len(tokenizer.decode(window[1:]).encode("utf-8"))
        tokens += len(window) - 1
        if len(pending) == batch:
            nats += score_batch(runner, pending)
            pending = []
    if pending:
        nats += score_batch(runner, pending)
    if not tokens:
        raise ValueError(
            f"no window of {size} tokens in the texts: give more text or a smaller --window"
        )
    return {
        "model": str(model_dir),
        "tokens": tokens,
        "bytes": n_bytes,
        "nats_per_token": round(nats / tokens, 4),
        "bits_per_byte": round(nats / math.log(2) / n_bytes, 4),
        "window": size,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode eval bpb", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument(
        "--texts", type=Path, default=DEFAULT_TEXTS, help="a corpus JSONL (its validation split)"
    )
    parser.add_argument("--window", type=int, default=256, help="tokens per scored window")
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens to score in all")
    parser.add_argument("--batch", type=int, default=8, help="windows decoded together")
    parser.add_argument(
        "--skip-sources",
        default="",
        help='comma-separated sources to leave out (a corpus JSONL\'s "source"), e.g. stdlib',
    )
    parser.add_argument("--json", action="store_true", help="print JSON only (the default too)")
    args = parser.parse_args(list(argv))
    if not args.texts.is_file():
        parser.error(
            f"--texts {args.texts} is not a file: build the corpus first"
            " (python -m inference.build corpus --work runs/v2) or name a text file"
        )
    if args.window < 2 or args.tokens < 1 or args.batch < 1:
        parser.error("--window must be at least 2, --tokens and --batch at least 1")
    skipped = [name for name in args.skip_sources.split(",") if name]
    texts = read_texts(args.texts, skipped)
    report = bits_per_byte(args.model, texts, args.window, args.tokens, args.batch)
    report["skipped_sources"] = skipped
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
