"""Training checkpoints: the full one for this machine and the compact one a new machine resumes.

Full: fp32 weights and the optimizer exactly as they are. Compact: weights and AdamW's moments in
bfloat16 plus the run state, about a third of the full size (6 bytes a parameter instead of 12),
small enough to commit for the tiny model. A resume from it rounds weights and moments to bf16
once; the run then goes on as before (same data order, same schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_full(path: Path, model: Any, opt: Any, state: dict[str, Any]) -> None:
    _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, path)


def save_compact(path: Path, model: Any, opt: Any, state: dict[str, Any]) -> None:
    import torch

    def small(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() > 0:
            return value.detach().to("cpu", torch.bfloat16)
        return value

    optimizer = _map_moments(opt.state_dict(), small)
    # Tied tensors (embedding = output head) share storage; convert once so they stay shared.
    converted: dict[int, Any] = {}
    weights = {
        name: converted.setdefault(t.data_ptr(), small(t)) for name, t in model.state_dict().items()
    }
    _atomic_save({"model": weights, "optimizer": optimizer, "state": state, "compact": True}, path)


def _map_moments(optimizer: dict[str, Any], convert: Any) -> dict[str, Any]:
    """The optimizer state dict with `convert` applied to each per-parameter state value; an
    optimizer made of parts (train.Optimizers: Muon + AdamW) keeps one state dict a part."""
    if "parts" in optimizer:
        return {"parts": [_map_moments(part, convert) for part in optimizer["parts"]]}
    return optimizer | {
        "state": {
            key: {name: convert(v) for name, v in slots.items()}
            for key, slots in optimizer["state"].items()
        }
    }


def load_checkpoint(path: Path, model: Any, opt: Any, device: str) -> dict[str, Any]:
    """Load either kind into model and opt (restoring fp32); returns the run state."""
    import torch

    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in saved["model"].items()}
    )
    optimizer = saved["optimizer"]
    if saved.get("compact"):

        def full(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() > 0:
                return value.float()
            return value

        optimizer = _map_moments(optimizer, full)
    opt.load_state_dict(optimizer)
    return dict(saved["state"])
