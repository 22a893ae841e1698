"""A GPU run's way home: its weights and records out of the device machine, and back into a work
directory here, where `python -m inference.build export` turns them into the shipped ONNX files.

The device tool brings back at most 8 files of 16 MiB each, 64 MiB in all. The weights travel
as one bf16 safetensors blob cut into parts under that size (the tied output head is left out:
it is the embedding), beside the run's small records (config, state, log). The optimizer's
moments stay behind (three times the weights): a GPU run is not resumed on another machine;
the next one starts again from the corpus, which costs minutes there.

    python -m inference.build.carry pack runs/gpu "$OUT"             # on the device
    python -m inference.build.carry unpack FILES_AT runs/gpu --tokenizer-from runs/v2   # here
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

PART_BYTES = 15 * 2**20  # under the tool's 16 MiB a file
MAX_FILES = 8
MAX_BYTES = 64 * 2**20
RECORDS = ("train_config.json", "train_state.json", "train_log.jsonl")
PART_PREFIX = "weights.safetensors.part"
TIED = "lm_head.weight"


def pack_for_return(work: Path, out: Path) -> list[Path]:
    """Write the latest checkpoint's bf16 weights in parts, and the records, into `out`."""
    import torch
    from safetensors.torch import save

    saved = torch.load(work / "compact.pt", map_location="cpu", weights_only=False)
    weights = {
        name: tensor.to(torch.bfloat16).contiguous()
        for name, tensor in saved["model"].items()
        if name != TIED
    }
    blob = save(weights)
    records = [work / name for name in RECORDS if (work / name).exists()]
    parts = -(-len(blob) // PART_BYTES)
    total = len(blob) + sum(r.stat().st_size for r in records)
    if parts + len(records) > MAX_FILES or total > MAX_BYTES:
        raise SystemExit(
            f"{len(blob) / 2**20:.1f} MiB of weights in {parts} parts plus {len(records)} records "
            f"is over what the device tool brings back ({MAX_FILES} files, "
            f"{MAX_BYTES // 2**20} MiB): train a smaller shape"
        )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(parts):
        path = out / f"{PART_PREFIX}{i:02d}"
        path.write_bytes(blob[i * PART_BYTES : (i + 1) * PART_BYTES])
        written.append(path)
    for record in records:
        written.append(Path(shutil.copy2(record, out / record.name)))
    return written


def unpack(returned: Path, work: Path, tokenizer_from: Path) -> Path:
    """Rebuild `work/hf` (fp32 weights, config, tokenizer) and the records from what came back;
    returns the Hugging Face model directory."""
    import torch
    from safetensors.torch import load

    from inference.build.export import TOKENIZER_FILES, empty_model

    parts = sorted(returned.glob(f"{PART_PREFIX}*"))
    if not parts:
        raise SystemExit(f"no {PART_PREFIX}NN files in {returned}")
    work.mkdir(parents=True, exist_ok=True)
    for name in RECORDS:
        if (returned / name).exists():
            shutil.copy2(returned / name, work / name)
    hf_dir = work / "hf"
    hf_dir.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / "hf" / name).exists():
            shutil.copy2(tokenizer_from / "hf" / name, hf_dir / name)
    weights: dict[str, Any] = load(b"".join(p.read_bytes() for p in parts))
    model = empty_model(work, hf_dir)
    missing, unexpected = model.load_state_dict(
        {name: tensor.to(torch.float32) for name, tensor in weights.items()}, strict=False
    )
    if unexpected or set(missing) - {TIED}:
        raise SystemExit(f"the weights do not fit the shape: missing {missing}, extra {unexpected}")
    model.tie_weights()
    model.save_pretrained(hf_dir, safe_serialization=True)
    return hf_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.build.carry")
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="on the device: the weights and records into OUT")
    pack.add_argument("work", type=Path)
    pack.add_argument("out", type=Path)
    back = sub.add_parser("unpack", help="here: what came back into a work directory")
    back.add_argument("returned", type=Path)
    back.add_argument("work", type=Path)
    back.add_argument("--tokenizer-from", type=Path, required=True, help="the base work dir")
    args = parser.parse_args(argv)
    if args.command == "pack":
        for path in pack_for_return(args.work, args.out):
            print(path)
    else:
        print(unpack(args.returned, args.work, args.tokenizer_from))
    return 0


if __name__ == "__main__":
    sys.exit(main())
