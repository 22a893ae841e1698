"""llama.cpp as a peer in `flashcode bench engine`: the same prompts, the same greedy work.

llama.cpp is the engine behind Tabby, llama.vim, Continue+Ollama and LM Studio, so it is what a
user would pick instead of us. Its figures come from llama-cpp-python (built from its PyPI
source, see llama_server.py), run in that Python as a child process that reads one JSON job on
stdin and prints one JSON answer, so our process never loads a second inference runtime:

- `decode_tps_b1`, `prefill_ms_512`: one sequence, the 512-token prompt, then greedy tokens;
- `throughput_tps_c8` / `throughput_tps_sequential`: the 8 throughput prompts decoded together
  as 8 sequences of one `llama_decode` batch (what `llama-server --parallel 8` does per step;
  llama-cpp-python's own server handles one request at a time, so it cannot stand for that),
  then one after another; tokens generated per wall-clock second, prefill included, like ours;
- `same_tokenization`: llama.cpp's tokenizer, loaded from the GGUF, gives the ids ours gives for
  the prompt text: the converter was told the right pre-tokenizer (measured, not assumed).

The low-level C API is used (not `llama_cpp.Llama`), because the batch of 8 sequences needs it
and one code path for both keeps the per-token overheads alike: argmax over the logits row in
numpy, as our engine does. Without llama-cpp-python every key is None and `reason` says why.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

KEYS = (
    "decode_tps_b1",
    "prefill_ms_512",
    "throughput_tps_c8",
    "throughput_tps_sequential",
    "same_tokenization",
    "rss_mb",
)
TIMEOUT_S = 3600


@dataclass(frozen=True)
class LlamaJob:
    gguf: Path
    threads: int
    prompt: list[int]  # the b1 prompt
    throughput_prompts: list[list[int]]
    decode_tokens: int
    repeats: int
    text: str  # tokenized by llama.cpp and compared with `text_ids`
    text_ids: list[int]


def unavailable(reason: str) -> dict[str, object]:
    """The llama.cpp figures when they cannot be measured: every key None, and why."""
    return {**dict.fromkeys(KEYS), "reason": reason}


_SCRIPT = r"""
import ctypes, json, statistics, sys, time
import numpy as np
import llama_cpp as L

job = json.load(sys.stdin)
QUIET = L.llama_log_callback(lambda level, text, data: None)  # kept: C holds the pointer
L.llama_log_set(QUIET, ctypes.c_void_p())
L.llama_backend_init()
model = L.llama_model_load_from_file(job["gguf"].encode(), L.llama_model_default_params())
assert model, "the GGUF did not load"
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)
CHUNK = 512
batch = L.llama_batch_init(CHUNK, 0, 1)


def context(n_ctx, sequences):
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, CHUNK, CHUNK
    params.n_seq_max = sequences
    params.n_threads = params.n_threads_batch = job["threads"]
    params.no_perf = True
    ctx = L.llama_init_from_model(model, params)
    assert ctx, "no llama.cpp context"
    return ctx


def decode(ctx, items):
    # items: (token, position, sequence, wants logits); at most CHUNK per llama_decode
    for start in range(0, len(items), CHUNK):
        part = items[start : start + CHUNK]
        batch.n_tokens = len(part)
        for i, (token, pos, seq, logits) in enumerate(part):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        assert L.llama_decode(ctx, batch) == 0, "llama_decode failed"


def argmax(ctx, index):
    row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
    return int(np.argmax(row))


def generate(ctx, prompts, new_tokens):
    # (prefill s, decode s, tokens): all prompts prefilled, then decoded together, greedy
    L.llama_memory_clear(L.llama_get_memory(ctx), True)
    started = time.perf_counter()
    outs = []
    for seq, prompt in enumerate(prompts):
        decode(ctx, [(t, i, seq, i == len(prompt) - 1) for i, t in enumerate(prompt)])
        outs.append([argmax(ctx, -1)])
    prefilled = time.perf_counter()
    for step in range(new_tokens - 1):
        decode(ctx, [(outs[s][-1], len(p) + step, s, True) for s, p in enumerate(prompts)])
        for s in range(len(prompts)):
            outs[s].append(argmax(ctx, s))
    return prefilled - started, time.perf_counter() - prefilled, outs


new = job["decode_tokens"]
single = context(len(job["prompt"]) + new + 16, 1)
generate(single, [job["prompt"]], 8)  # first use sets up buffers and threads
prefill, decode_rate = [], []
for _ in range(job["repeats"]):
    p, d, _ = generate(single, [job["prompt"]], new)
    prefill.append(p * 1000)
    decode_rate.append((new - 1) / d)
L.llama_free(single)

prompts = job["throughput_prompts"]
longest = max(len(p) for p in prompts) + new + 16
together = context(len(prompts) * longest, len(prompts))
alone = context(longest, 1)
generate(together, prompts, 4)
c8, sequential = [], []
for _ in range(job["repeats"]):
    p, d, outs = generate(together, prompts, new)
    c8.append(sum(map(len, outs)) / (p + d))
    started = time.perf_counter()
    count = sum(len(generate(alone, [prompt], new)[2][0]) for prompt in prompts)
    sequential.append(count / (time.perf_counter() - started))

text = job["text"].encode()
ids = (L.llama_token * (len(text) + 16))()
count = L.llama_tokenize(vocab, text, len(text), ids, len(ids), False, True)
rss_kb = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")
)
print(json.dumps({
    "decode_tps_b1": statistics.median(decode_rate),
    "prefill_ms_512": statistics.median(prefill),
    "throughput_tps_c8": statistics.median(c8),
    "throughput_tps_sequential": statistics.median(sequential),
    "same_tokenization": list(ids[:count]) == job["text_ids"],
    "rss_mb": rss_kb / 1024,
}))
"""


def exit_reason(returncode: int, stderr: str) -> str:
    """Why a child failed: the tail of its stderr, else the signal or status (a crash in native
    code prints nothing)."""
    if tail := stderr.strip()[-500:]:
        return tail
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def measure(job: LlamaJob, python: str | None) -> dict[str, object]:
    """llama.cpp's figures for `job`, or `unavailable(...)` with the reason."""
    if python is None:
        return unavailable(
            "no Python with llama-cpp-python: set FLASHCODE_LLAMA_PYTHON "
            "(benchmarks/llama_server.py says how to build it)"
        )
    payload = json.dumps(
        {
            "gguf": str(job.gguf),
            "threads": job.threads,
            "prompt": job.prompt,
            "throughput_prompts": job.throughput_prompts,
            "decode_tokens": job.decode_tokens,
            "repeats": job.repeats,
            "text": job.text,
            "text_ids": job.text_ids,
        }
    )
    try:
        result = subprocess.run(
            [python, "-c", _SCRIPT], input=payload, capture_output=True, text=True,
            timeout=TIMEOUT_S,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return unavailable(f"llama.cpp run failed: {error}")
    if result.returncode != 0:
        return unavailable(f"llama.cpp run failed: {exit_reason(result.returncode, result.stderr)}")
    figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**unavailable(""), **figures, "reason": None}


def figures_for(
    job: LlamaJob,
    ggufs: dict[str, Path] | str,
    python: str | None,
) -> dict[str, object]:
    """`llamacpp_*` keys for `flashcode bench engine`: Q4_0's figures at the top level (the
    peer a user would run), and every type's under `llamacpp`. `ggufs` is {type: file}, or the
    reason there are none."""
    if isinstance(ggufs, str):
        by_type: dict[str, dict[str, object]] = {"q4_0": unavailable(ggufs)}
    else:
        by_type = {kind: measure(replace(job, gguf=path), python) for kind, path in ggufs.items()}
    main = by_type.get("q4_0") or next(iter(by_type.values()))
    top = {f"llamacpp_{key}": main.get(key) for key in KEYS}
    return {**top, "llamacpp_reason": main.get("reason"), "llamacpp": by_type}
