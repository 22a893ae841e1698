"""The models a server runs: loaded in the background, replaced when settings change.

Two tiers (DESIGN.md): "flash" serves inline completion, "pro" serves tests and docstrings; both
default to the embedded model and share one Engine when they name the same directory. When an
int8 variant sits beside an int4 model, complex scopes may be routed to it (inference.router).
With `backend: "remote"` both tiers are one remote engine instead (backends/remote.py), and its
faults go out through `problems`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from inference.engine import Engine, EngineOptions
from inference.model import ModelError
from inference.prefix_cache import PrefixBudget
from inference.router import ModelRouter, default_model_dir, find_variants
from lsp_server.backends.engine import ServingEngine
from lsp_server.backends.remote import RemoteSetupError, RemoteSpec, connect
from lsp_server.events import Signal
from lsp_server.native_memory import glibc_trim
from lsp_server.settings import Settings

log = logging.getLogger(__name__)


class ModelState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


@dataclass(frozen=True)
class ModelSpec:
    """What decides whether a loaded engine can be kept after a settings change."""

    flash_dir: Path
    pro_dir: Path
    device: str
    threads: int
    prompt_lookup: bool = True
    remote: RemoteSpec | None = None  # set when backend is remote: no local model is loaded

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelSpec:
        flash = (
            Path(settings.model_path).expanduser() if settings.model_path else default_model_dir()
        )
        pro = Path(settings.pro_model_path).expanduser() if settings.pro_model_path else flash
        remote = RemoteSpec.from_settings(settings) if settings.backend == "remote" else None
        return cls(flash, pro, settings.device, settings.threads, settings.prompt_lookup, remote)


def load_fix(error: BaseException) -> str:
    """What the user can do about a model that did not load."""
    if isinstance(error, RemoteSetupError):
        return error.fix
    if isinstance(error, ModelError | FileNotFoundError | NotADirectoryError):
        return (
            "Set modelPath to a model directory (genai_config.json, or config.json and "
            "model.onnx, with tokenizer.json), or leave it empty for the embedded model."
        )
    return (
        "Its files look incomplete, damaged or made for a newer onnxruntime: export or copy "
        "the model again, or leave modelPath empty for the embedded model."
    )


class ModelManager:
    """Owns the engines. Loading runs on a worker thread; readers never wait for it. `changed`
    fires on every state change (loading, ready, error)."""

    def __init__(self) -> None:
        self.state = ModelState.LOADING
        self.error = ""
        self.spec: ModelSpec | None = None
        self.flash: ModelRouter[ServingEngine] | None = None
        self.pro: ModelRouter[ServingEngine] | None = None
        self.load_seconds = 0.0
        self.changed: Signal[ModelManager] = Signal()
        self.problems: Signal[str] = Signal()  # a remote server's faults, rate-limited
        self._generation = 0  # bumps on every reload so a slow stale load cannot win

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY and self.flash is not None

    def describe(self) -> str:
        if self.flash is None:
            return self.spec.flash_dir.name if self.spec else ""
        return self.flash.primary.model.name

    def device(self) -> str:
        if self.flash is None:
            return ""
        provider = self.flash.primary.provider
        if provider == "remote":
            return provider
        return "cuda" if "CUDA" in provider else "cpu"

    async def load(self, settings: Settings) -> None:
        spec = ModelSpec.from_settings(settings)
        if spec == self.spec and self.state is not ModelState.ERROR:
            return
        self._generation += 1  # on the event loop: no other writer
        generation = self._generation
        self.spec = spec
        self.state = ModelState.LOADING
        self.error = ""
        self.changed.emit(self)
        options = EngineOptions(
            device=spec.device, threads=spec.threads, prompt_lookup=spec.prompt_lookup
        )
        # One prefix-cache bound for every engine of this load, not one per variant.
        options = replace(options, prefix_budget=PrefixBudget(options.prefix_cache_mb * 2**20))
        started = time.perf_counter()
        try:
            if spec.remote is not None:
                flash = pro = await connect(spec.remote, self.problems.emit)
            else:
                flash, pro = await asyncio.to_thread(self._load_blocking, spec, options)
        except Exception as exc:  # any fault of the model's files ends in the error state
            if generation != self._generation:
                return
            self.state = ModelState.ERROR
            self.error = f"flashcode could not load the model: {exc}. {load_fix(exc)}"
            log.error("model load failed: %s", exc)
            self.changed.emit(self)
            return
        if generation != self._generation:
            flash.close()
            if pro is not flash:
                pro.close()
            return
        old = [router for router in (self.flash, self.pro) if router is not None]
        self.flash, self.pro = flash, pro
        self.load_seconds = time.perf_counter() - started
        self.state = ModelState.READY
        log.info(
            "model %s ready on %s in %.2fs",
            flash.primary.model.name,
            flash.primary.provider,
            self.load_seconds,
        )
        for router in {id(r): r for r in old}.values():
            router.close()
        # Loading leaves the graph rewrite's and the old models' heap behind: 137 MB at the 0.5B
        # shape, given back here rather than at the first pause in typing.
        if (trim := glibc_trim()) is not None:
            trim()
        self.changed.emit(self)

    @staticmethod
    def _load_blocking(
        spec: ModelSpec, options: EngineOptions
    ) -> tuple[ModelRouter[ServingEngine], ModelRouter[ServingEngine]]:
        flash = ModelRouter[ServingEngine](
            {
                name: Engine.load(path, options)
                for name, path in find_variants(spec.flash_dir).items()
            }
        )
        if spec.pro_dir == spec.flash_dir:
            return flash, flash
        pro = ModelRouter[ServingEngine](
            {name: Engine.load(path, options) for name, path in find_variants(spec.pro_dir).items()}
        )
        return flash, pro

    def close(self) -> None:
        for router in {id(r): r for r in (self.flash, self.pro) if r is not None}.values():
            router.close()
        self.flash = self.pro = None
