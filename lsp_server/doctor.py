"""`flashcode doctor`: what a user checks first when completions do not appear.

Each check says ok, warning or problem, with the fix in its detail; the command exits 1 when any
check found a problem. Nothing is created or changed: the cache directory is only looked at.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from inference.cache.database import cache_dir
from inference.model import ModelError, load_model_info
from inference.router import find_variants
from lsp_server.backends.local import ModelSpec
from lsp_server.settings import Settings, config_file_path, merge
from prompts.languages import SUPPORTED_LANGUAGES
from prompts.parsing import load_grammar

OK, WARNING, PROBLEM = "ok", "warning", "problem"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK | WARNING | PROBLEM
    detail: str


def settings_checks(problems: list[str]) -> list[Check]:
    if not problems:
        return [Check("settings", OK, "config file and FLASHCODE_* variables are valid")]
    return [Check("settings", PROBLEM, f"{problem}; the default is used") for problem in problems]


def model_checks(settings: Settings) -> list[Check]:
    spec = ModelSpec.from_settings(settings)
    tiers = {"model (flash)": spec.flash_dir}
    if spec.pro_dir != spec.flash_dir:
        tiers["model (pro)"] = spec.pro_dir
    checks = []
    for name, directory in tiers.items():
        for variant, path in find_variants(directory).items():
            label = name if variant == "primary" else f"{name}, {variant} variant"
            try:
                info = load_model_info(path)
            except ModelError as exc:
                checks.append(Check(label, PROBLEM, f"{exc}; set modelPath to a model directory"))
                continue
            detail = f"{info.name}: {info.family}, {info.precision}, {info.size_bytes:,} bytes"
            checks.append(Check(label, OK, f"{detail} ({path})"))
    return checks


def runtime_checks(settings: Settings, providers: list[str], installed: set[str]) -> list[Check]:
    checks = []
    both = {"onnxruntime", "onnxruntime-gpu"} <= installed
    if both:
        checks.append(
            Check(
                "onnxruntime packages",
                PROBLEM,
                "onnxruntime and onnxruntime-gpu are both installed and share one module; "
                "uninstall both, then install one (flashcode[gpu] for the GPU)",
            )
        )
    cuda = "CUDAExecutionProvider" in providers
    if settings.device == "cuda" and not cuda:
        checks.append(
            Check(
                "device",
                PROBLEM,
                "device is cuda but onnxruntime has no CUDA provider; install flashcode[gpu] "
                "(onnxruntime-gpu) or set device to auto",
            )
        )
    else:
        where = "cuda" if cuda and settings.device != "cpu" else "cpu"
        checks.append(Check("device", OK, f"{settings.device}: completions run on the {where}"))
    return checks


def grammar_checks() -> list[Check]:
    missing = []
    for language in SUPPORTED_LANGUAGES:
        try:
            load_grammar(language)
        except Exception as exc:  # a broken wheel: report it, the other languages still work
            missing.append(f"{language} ({exc})")
    if missing:
        return [
            Check(
                "tree-sitter grammars",
                WARNING,
                f"not loadable: {', '.join(missing)}; completions there lose syntax-aware "
                "prompts and the pattern cache (reinstall flashcode)",
            )
        ]
    return [Check("tree-sitter grammars", OK, ", ".join(SUPPORTED_LANGUAGES))]


def cache_checks(settings: Settings) -> list[Check]:
    if not settings.cache.enabled:
        return [Check("cache", OK, "switched off (cache.enabled)")]
    directory = cache_dir(settings.cache.directory)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [
            Check(
                "cache",
                PROBLEM,
                f"{directory} cannot be written ({existing} is not a writable directory); "
                "set cache.directory or switch the cache off",
            )
        ]
    state = "exists" if directory.exists() else "will be created at the first completion"
    return [Check("cache", OK, f"{directory} ({state})")]


def installed_distributions() -> set[str]:
    return {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}


def run_checks(environ: dict[str, str] | None = None) -> dict[str, Any]:
    import onnxruntime

    environ = dict(os.environ) if environ is None else environ
    settings, problems = merge({}, environ=environ)
    providers = onnxruntime.get_available_providers()
    checks = [
        *settings_checks(problems),
        *model_checks(settings),
        *runtime_checks(settings, providers, installed_distributions()),
        *grammar_checks(),
        *cache_checks(settings),
    ]
    return {
        "ok": all(c.status != PROBLEM for c in checks),
        "checks": [asdict(c) for c in checks],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime": onnxruntime.__version__,
        "providers": providers,
        "config_file": str(config_file_path(environ)),
    }
