#!/usr/bin/env bash
# The prepared GPU run: on a machine the device tool lends, train the GPU shape (31M parameters)
# on the carried packed corpus for N minutes, then put its weights and records in $OUT for the
# way back. Its image has torch, transformers and tokenizers; nothing else is installed there.
#
# Here, before the call (runs/v2 built: corpus, tokenizer, pack):
#   mv inference/build/v2/stable.pt /tmp/    # the working tree that travels must stay under
#                                            # 64 MiB; the GPU run does not need it
# The call (device tool `run`), then move stable.pt back:
#   command: bash inference/build/gpu_run.sh 10
#   carry:   runs/v2/packed/tokens.bin.xz, runs/v2/packed/index.json, runs/v2/hf/tokenizer.json,
#            runs/v2/hf/tokenizer_config.json, runs/v2/hf/special_tokens_map.json,
#            runs/v2/corpus/report.json
#   timeout_s: N * 60 + 180 (unpacking the corpus, the validations and the final checkpoint)
# Back here, then score it as any model:
#   python -m inference.build.carry unpack FILES_AT runs/gpu --tokenizer-from runs/v2
#   python -m inference.build export --work runs/gpu --out runs/gpu/export
set -euo pipefail
minutes=${1:-10}
out=${OUT:-runs/gpu/out}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
log=/tmp/flashcode-gpu-train.log  # the progress bar's output: not one of the 8 files back
if ! python3 -m inference.build train --gpu --work runs/gpu --corpus-from runs/v2 \
  --minutes "$minutes" > "$log" 2>&1; then
  tr '\r' '\n' < "$log" | tail -n 40
  exit 1
fi
tr '\r' '\n' < "$log" | tail -n 3
python3 -m inference.build.carry pack runs/gpu "$out"
tail -n 3 runs/gpu/train_log.jsonl
