"""Train flashcode-tiny: a transformers Qwen2 causal LM on the packed corpus, CPU or CUDA GPU.

The data is the packed token file (pack.py): windows of `context_length + 1` tokens, in a seeded
order per epoch, so that where a run stopped is two integers. The loss weighs the token that ends
a FIM middle `end_of_middle_weight` times (fim_data.end_of_middle_weights). Validation reports
nats per token and bits per byte, which compares across tokenizers.

Schedule: warmup-stable-decay (Hägele et al. 2024). After a linear warmup the learning rate stays
at its peak for as many runs as are given; a run with `decay_minutes` ends in a decay to
`min_lr_ratio` of the peak over its last minutes (1 - sqrt shape). Time is wall-clock training
time, so a run is given minutes, not steps. Checkpoints, every `checkpoint_minutes`:
- `checkpoint.pt`: fp32 weights and optimizer, the exact state for this machine;
- `compact.pt`: bf16 weights and AdamW moments plus the state, small enough to commit, so a fresh
  machine resumes with `--resume-from` (bf16 rounding is the only difference);
- `stable.pt`: the latest compact checkpoint taken before any decay, to start a decay from later.
Running the same command again resumes from `checkpoint.pt`, then `compact.pt`.

Optimizer: AdamW, or Muon (`optimizer="muon"`: orthogonalized momentum for the hidden 2-D weight
matrices, AdamW for the embedding, norms and biases, both on one schedule; Muon's step is scaled
to AdamW's RMS so the same learning rate serves both). A run may stop at a token budget
(`max_tokens`) instead of its minutes, so that ablations compare at equal tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.build.fim_data import FimConfig


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 256  # width of the residual stream
    num_layers: int = 6  # transformer blocks
    num_heads: int = 4  # query heads (head_dim = hidden_size / num_heads)
    num_kv_heads: int = 2  # grouped-query attention: K/V heads shared by 2 query heads each
    intermediate_size: int = 768  # SwiGLU MLP width
    vocab_size: int = 8192  # byte-level BPE vocabulary, special tokens included
    context_length: int = 1024  # max_position_embeddings; training rows are this long


def parameter_count(shape: ModelShape) -> int:
    """Parameters of the Qwen2 model of `shape` (tied head; q/k/v biases; RMSNorm weights)."""
    h, head_dim = shape.hidden_size, shape.hidden_size // shape.num_heads
    q, kv = shape.num_heads * head_dim, shape.num_kv_heads * head_dim
    attention = h * q + q + 2 * (h * kv + kv) + q * h
    layer = attention + 3 * h * shape.intermediate_size + 2 * h
    return shape.vocab_size * h + shape.num_layers * layer + h


# Named shapes. "deep" has the default's parameters (6.7M vs 6.8M) in twice the layers, for the
# depth-vs-width ablation; "gpu" is the 31M-parameter model a lent GPU trains in minutes: its
# bf16 weights (63 MB) fit what the device tool brings back (64 MiB, carry.py).
SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape(),
    "deep": ModelShape(
        hidden_size=192, num_layers=12, num_heads=3, num_kv_heads=1, intermediate_size=576
    ),
    "gpu": ModelShape(
        hidden_size=512, num_layers=9, num_heads=8, num_kv_heads=2, intermediate_size=1536
    ),
}
OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 90.0  # wall-clock training time of this invocation (added to what resumed)
    batch_size: int = 4  # rows per step (each row is context_length tokens)
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # where the decay ends, as a share of lr
    warmup_steps: int = 100
    decay_minutes: float = 0.0  # the last minutes of this invocation decay the rate; 0 = stable
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1234
    checkpoint_minutes: float = 5.0
    eval_rows: int = 64  # validation windows scored at each checkpoint
    log_every: int = 20  # steps between log records
    threads: int = 0  # torch CPU threads; 0 = all cores
    optimizer: str = "adamw"  # one of OPTIMIZERS
    max_tokens: int = 0  # stop once this many tokens are seen (0: only the minutes bound)
    shape: ModelShape = field(default_factory=ModelShape)
    fim: FimConfig = field(default_factory=FimConfig)


def qwen2_config(shape: ModelShape, eos_id: int, pad_id: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.context_length,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        use_sliding_window=False,
    )


def lr_at(step: int, elapsed_s: float, state: dict[str, Any], cfg: TrainConfig) -> float:
    """Warmup-stable-decay: linear warmup, the peak, then 1 - sqrt down to the floor."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = state.get("decay_start_s")
    if decay_start is None or elapsed_s < decay_start:
        return cfg.lr
    progress = min(1.0, (elapsed_s - decay_start) / max(state["decay_s"], 1e-9))
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * (1 - math.sqrt(progress)))


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    """Summed loss (nats) over the bytes those tokens spell: nats/token x tokens/bytes / ln 2."""
    assert total_bytes > 0, "no bytes to divide by"
    return total_nats / total_bytes / math.log(2)


def training_seconds(dt: float, typical: float | None) -> float:
    """The step's share of the training clock: a step far longer than the typical one was
    paused (SIGSTOP while figures are taken elsewhere) and counts as a typical step."""
    if typical is None or dt <= 20 * typical:
        return dt
    return typical


def stable_state(state: dict[str, Any]) -> dict[str, Any]:
    """The run state as stable.pt keeps it: without this run's decay schedule, so that a run
    resumed from it goes on at the peak rate until it is given a decay of its own."""
    return {k: v for k, v in state.items() if k not in ("decay_start_s", "decay_s")}


def log(work: Path, record: dict[str, Any]) -> None:
    with (work / "train_log.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


def train(work: Path, packed: Path, cfg: TrainConfig, resume_from: Path | None = None) -> Path:
    """Train (or resume) in `work` on the packed corpus; returns the Hugging Face model dir."""
    import torch
    from tokenizers import Tokenizer
    from tqdm import tqdm

    from inference.build.checkpoints import load_checkpoint, save_compact, save_full
    from inference.build.fim_data import SpecialIds, end_of_middle_weights
    from inference.build.pack import load_packed, token_byte_lengths, windows

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_dir = work / "hf"
    tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    ids = SpecialIds.from_tokenizer(tok)
    tokens, index = load_packed(packed)
    tokenizer_sha = hashlib.sha256((hf_dir / "tokenizer.json").read_bytes()).hexdigest()
    assert tokenizer_sha == index["tokenizer_sha256"], "the packed file has another tokenizer"
    assert index["vocab_size"] <= cfg.shape.vocab_size, "the packed file's vocabulary is larger"
    byte_lengths = torch.from_numpy(token_byte_lengths(tok))
    model, opt = _model_and_optimizer(cfg, ids, device)
    state: dict[str, Any] = {"step": 0, "epoch": 0, "row": 0, "elapsed_s": 0.0, "tokens": 0}
    for candidate in (resume_from, work / "checkpoint.pt", work / "compact.pt"):
        if candidate is not None and candidate.exists():
            state = load_checkpoint(candidate, model, opt, device)
            print(f"resumed from {candidate} at step {state['step']}, {state['tokens']:,} tokens")
            break
    assert state.setdefault("tokenizer_sha256", tokenizer_sha) == tokenizer_sha, (
        "the checkpoint was trained with another tokenizer"
    )
    run_end_s = state["elapsed_s"] + cfg.minutes * 60
    if cfg.decay_minutes > 0 and state.get("decay_start_s") is None:
        state["decay_s"] = min(cfg.decay_minutes, cfg.minutes) * 60
        state["decay_start_s"] = run_end_s - state["decay_s"]
    elif state.get("decay_start_s") is not None:  # resuming inside a decay: finish it, no more
        run_end_s = min(run_end_s, state["decay_start_s"] + state["decay_s"])
    n_params = sum(p.numel() for p in model.parameters())
    (work / "train_config.json").write_text(
        json.dumps(
            asdict(cfg) | {"parameters": n_params, "packed": str(packed), "device": device},
            indent=2,
        )
    )

    seq = cfg.shape.context_length
    train_split, val_split = index["splits"]["train"], index["splits"]["validation"]
    val_starts = windows(val_split["start"], val_split["end"], seq + 1)
    if len(val_starts) > cfg.eval_rows:  # evenly spread over the split, the same every time
        val_starts = val_starts[np.linspace(0, len(val_starts) - 1, cfg.eval_rows).astype(int)]
    train_starts = windows(train_split["start"], train_split["end"], seq + 1)
    assert len(train_starts) >= cfg.batch_size, "the packed training split is too small"

    def batch_at(starts: np.ndarray) -> tuple[Any, Any]:
        rows = np.stack([np.asarray(tokens[s : s + seq + 1], dtype=np.int64) for s in starts])
        weights = np.stack(
            [end_of_middle_weights(r, ids, cfg.fim.end_of_middle_weight)[1:] for r in rows]
        )
        return torch.from_numpy(rows).to(device), torch.from_numpy(weights).to(device)

    def token_losses(rows: Any) -> Any:
        # (batch, seq) cross-entropy of each next token, in nats
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=rows[:, :-1]).logits
        return torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), rows[:, 1:].flatten(), reduction="none"
        ).view(rows.shape[0], -1)

    def validate() -> dict[str, float]:
        model.eval()
        nats, count, n_bytes = 0.0, 0, 0
        with torch.no_grad():
            for i in range(0, len(val_starts), cfg.batch_size):
                rows, _ = batch_at(val_starts[i : i + cfg.batch_size])
                nats += float(token_losses(rows).sum())
                count += rows[:, 1:].numel()
                n_bytes += int(byte_lengths[rows[:, 1:].cpu()].sum())
        model.train()
        return {"val_loss": nats / max(count, 1), "val_bpb": bits_per_byte(nats, max(n_bytes, 1))}

    def order(epoch: int) -> np.ndarray:
        return np.random.default_rng(cfg.seed + epoch).permutation(len(train_starts))

    def checkpoint() -> None:
        save_full(work / "checkpoint.pt", model, opt, state)
        save_compact(work / "compact.pt", model, opt, state)
        if state.get("decay_start_s") is None or state["elapsed_s"] < state["decay_start_s"]:
            save_compact(work / "stable.pt", model, opt, stable_state(state))

    if state["step"] == 0:  # where the curve starts
        log(work, {"step": 0, "tokens": 0} | validate())
    permutation = order(state["epoch"])
    bar = tqdm(total=int(run_end_s), initial=int(state["elapsed_s"]), unit="s", dynamic_ncols=True)
    last_ckpt = t_prev = time.monotonic()
    typical_dt: float | None = None
    model.train()
    while state["elapsed_s"] < run_end_s and not (
        cfg.max_tokens and state["tokens"] >= cfg.max_tokens
    ):
        if state["row"] + cfg.batch_size > len(permutation):
            state["epoch"] += 1
            state["row"] = 0
            permutation = order(state["epoch"])
        picked = train_starts[permutation[state["row"] : state["row"] + cfg.batch_size]]
        rows, weights = batch_at(picked)
        state["row"] += cfg.batch_size
        lr = lr_at(state["step"], state["elapsed_s"], state, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        losses = token_losses(rows)
        loss = (losses * weights).sum() / weights.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        now = time.monotonic()
        dt, t_prev = training_seconds(now - t_prev, typical_dt), now
        typical_dt = dt if typical_dt is None else 0.9 * typical_dt + 0.1 * dt
        state["elapsed_s"] += dt
        state["step"] += 1
        state["tokens"] += rows[:, 1:].numel()
        tps = rows[:, 1:].numel() / max(dt, 1e-6)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tps:,.0f}", lr=f"{lr:.2e}")
        bar.update(int(state["elapsed_s"]) - bar.n)
        if state["step"] % cfg.log_every == 0:
            record = {"step": state["step"], "loss": loss.item(), "lr": lr, "tok_s": tps}
            log(work, record | {"tokens": state["tokens"], "elapsed_s": state["elapsed_s"]})
        if now - last_ckpt > cfg.checkpoint_minutes * 60:
            log(work, {"step": state["step"], "tokens": state["tokens"]} | validate())
            checkpoint()
            last_ckpt = t_prev = time.monotonic()  # checkpoint time is not training time
    bar.close()
    final = validate()
    state["final_val_loss"], state["final_val_bpb"] = final["val_loss"], final["val_bpb"]
    log(work, {"step": state["step"], "tokens": state["tokens"], "final": True} | final)
    checkpoint()
    model.save_pretrained(hf_dir, safe_serialization=True)
    (work / "train_state.json").write_text(json.dumps(state, indent=2))
    return hf_dir


def _model_and_optimizer(cfg: TrainConfig, ids: Any, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import Qwen2ForCausalLM

    assert cfg.optimizer in OPTIMIZERS, f"unknown optimizer {cfg.optimizer!r}"
    model = Qwen2ForCausalLM(qwen2_config(cfg.shape, ids.eos, ids.pad))
    model.to(device)  # type: ignore[arg-type]  # transformers' decorator hides Module.to's signature
    named = list(model.named_parameters())  # the tied output head appears once, as the embedding
    muon = cfg.optimizer == "muon"
    hidden = [p for n, p in named if p.dim() == 2 and "embed" not in n] if muon else []
    to_muon = {id(p) for p in hidden}
    decay = [p for _, p in named if p.dim() >= 2 and id(p) not in to_muon]
    no_decay = [p for _, p in named if p.dim() < 2]
    adamw = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device == "cuda",
    )
    if not muon:
        return model, adamw
    matrices = torch.optim.Muon(
        hidden, lr=cfg.lr, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw"
    )
    return model, Optimizers((matrices, adamw))


class Optimizers:
    """Several optimizers over disjoint parameters, seen by the loop and the checkpoints as one:
    `param_groups` lists all their groups (the schedule sets each one's rate) and `state_dict`
    keeps each one's state under "parts"."""

    def __init__(self, parts: tuple[Any, ...]) -> None:
        self.parts = parts

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [group for part in self.parts for group in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        assert len(saved.get("parts", ())) == len(self.parts), "the checkpoint's optimizer differs"
        for part, state in zip(self.parts, saved["parts"], strict=True):
            part.load_state_dict(state)
