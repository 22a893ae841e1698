"""Train flashcode-tiny: a transformers Qwen2 causal LM with FIM, on the CPU or a CUDA GPU.

The learning-rate schedule follows wall-clock time (warmup, then cosine to 10%), so a run is
given minutes rather than steps and still ends at a low learning rate. State is checkpointed to
`<work>/checkpoint.pt` every few minutes; running the same command again resumes.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 90.0  # wall-clock budget for optimisation (schedule is time-based)
    batch_size: int = 4  # rows per step (each row is context_length tokens)
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine floor as a share of lr
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1234
    checkpoint_minutes: float = 5.0
    eval_rows: int = 64  # validation rows scored at each checkpoint
    threads: int = 0  # torch CPU threads; 0 = all cores
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


def lr_at(elapsed_s: float, step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, elapsed_s / (cfg.minutes * 60))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def log(work: Path, record: dict[str, Any]) -> None:
    with (work / "train_log.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


def train(work: Path, cfg: TrainConfig) -> Path:
    """Train (or resume) in `work`; returns the Hugging Face model directory it saved."""
    import torch
    from tokenizers import Tokenizer
    from tqdm import tqdm
    from transformers import Qwen2ForCausalLM

    from inference.build.corpus import collect
    from inference.build.fim_data import SpecialIds, epoch_tokens
    from inference.build.tokenizer_train import save_tokenizer, train_tokenizer

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    corpus = collect()
    hf_dir = work / "hf"
    if not (hf_dir / "tokenizer.json").exists():
        tok = train_tokenizer((f.text for f in corpus.train), cfg.shape.vocab_size)
        save_tokenizer(tok, hf_dir, cfg.shape.context_length)
    tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    ids = SpecialIds.from_tokenizer(tok)
    model = Qwen2ForCausalLM(qwen2_config(cfg.shape, ids.eos, ids.pad))
    model.to(device)  # type: ignore[arg-type]  # transformers' decorator hides Module.to's signature
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device == "cuda",
    )
    state: dict[str, Any] = {"step": 0, "epoch": 0, "row": 0, "elapsed_s": 0.0, "tokens": 0}
    ckpt = work / "checkpoint.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resumed at step {state['step']}, {state['tokens']:,} tokens seen")
    n_params = sum(p.numel() for p in model.parameters())
    (work / "train_config.json").write_text(
        json.dumps(asdict(cfg) | {"parameters": n_params}, indent=2)
    )

    seq = cfg.shape.context_length
    val_texts = [f.text for f in corpus.validation]
    val_rows = torch.from_numpy(
        epoch_tokens(val_texts, tok, seed=0, cfg=cfg.fim, seq_len=seq)[: cfg.eval_rows]
    ).long()

    def validation_loss() -> float:
        model.eval()
        losses = []
        with torch.no_grad():
            for i in range(0, len(val_rows), cfg.batch_size):
                batch = val_rows[i : i + cfg.batch_size].to(device)
                out = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone())
                losses.append(out.loss.item())
        model.train()
        return float(np.mean(losses))

    def save_checkpoint() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, tmp
        )
        tmp.replace(ckpt)

    budget_s = cfg.minutes * 60
    rows = epoch_tokens(
        [f.text for f in corpus.train], tok, cfg.seed + state["epoch"], cfg.fim, seq
    )
    bar = tqdm(total=int(budget_s), initial=int(state["elapsed_s"]), unit="s", dynamic_ncols=True)
    last_ckpt = time.monotonic()
    t_prev = time.monotonic()
    model.train()
    while state["elapsed_s"] < budget_s:
        if state["row"] + cfg.batch_size > len(rows):
            state["epoch"] += 1
            state["row"] = 0
            rows = epoch_tokens(
                [f.text for f in corpus.train], tok, cfg.seed + state["epoch"], cfg.fim, seq
            )
        batch = (
            torch.from_numpy(rows[state["row"] : state["row"] + cfg.batch_size]).long().to(device)
        )
        state["row"] += cfg.batch_size
        lr = lr_at(state["elapsed_s"], state["step"], cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        # labels are shifted inside the model: position t predicts token t+1
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone())
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        now = time.monotonic()
        dt = now - t_prev
        t_prev = now
        state["elapsed_s"] += dt
        state["step"] += 1
        state["tokens"] += batch.numel() - batch.shape[0]
        tps = (batch.numel() - batch.shape[0]) / max(dt, 1e-6)
        bar.set_postfix(loss=f"{out.loss.item():.3f}", tok_s=f"{tps:,.0f}", lr=f"{lr:.2e}")
        bar.update(int(state["elapsed_s"]) - bar.n)
        if state["step"] % 20 == 0:
            log(
                work,
                {
                    "step": state["step"],
                    "loss": out.loss.item(),
                    "lr": lr,
                    "tok_s": tps,
                    "tokens": state["tokens"],
                    "elapsed_s": state["elapsed_s"],
                },
            )
        if now - last_ckpt > cfg.checkpoint_minutes * 60:
            val = validation_loss()
            log(work, {"step": state["step"], "val_loss": val, "tokens": state["tokens"]})
            save_checkpoint()
            last_ckpt = time.monotonic()
            t_prev = time.monotonic()  # checkpoint time is not training time
    bar.close()
    val = validation_loss()
    state["final_val_loss"] = val
    log(work, {"step": state["step"], "val_loss": val, "tokens": state["tokens"], "final": True})
    save_checkpoint()
    model.save_pretrained(hf_dir, safe_serialization=True)
    (work / "train_state.json").write_text(json.dumps(state, indent=2))
    return hf_dir
