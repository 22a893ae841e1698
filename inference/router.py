"""Model tiers and dynamic precision.

A model directory may carry an int8 variant next to its int4 weights, in a subdirectory `int8/`
or a sibling `<name>-int8/`. Requests whose enclosing scope is complex go to the int8 variant,
which follows the fp32 model more closely; everything else takes the faster int4 one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, Protocol, TypeVar


def default_model_dir() -> Path:
    """The embedded flashcode-tiny model shipped inside the package."""
    return Path(__file__).resolve().parent / "models" / "default"


def _is_model_dir(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() and (
        (path / "genai_config.json").is_file() or (path / "config.json").is_file()
    )


def find_variants(model_dir: Path) -> dict[str, Path]:
    """{"primary": model_dir} plus {"int8": path} when an int8 variant exists beside it."""
    variants = {"primary": model_dir}
    for candidate in (model_dir / "int8", model_dir.with_name(model_dir.name + "-int8")):
        if candidate != model_dir and _is_model_dir(candidate):
            variants["int8"] = candidate
            break
    return variants


class ClosableEngine(Protocol):
    def close(self) -> None: ...


# The router holds local Engines or anything serving the same contract (lsp_server's remote
# backend, which this package cannot name).
EngineT = TypeVar("EngineT", bound=ClosableEngine, covariant=True)


class ModelRouter(Generic[EngineT]):
    """Picks the engine for a request: int8 for complex scopes when there is one."""

    def __init__(self, engines: dict[str, EngineT]) -> None:
        assert "primary" in engines, "a router needs its primary engine"
        self.engines = engines

    @property
    def primary(self) -> EngineT:
        return self.engines["primary"]

    def pick(self, complexity: int, threshold: int) -> EngineT:
        if complexity > threshold and "int8" in self.engines:
            return self.engines["int8"]
        return self.engines["primary"]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
