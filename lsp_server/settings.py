"""flashcode settings: one dataclass tree, merged from every place a user can set them.

Precedence, lowest first: defaults < config file (`<user config dir>/flashcode/config.json`)
< LSP initializationOptions < workspace/configuration("flashcode") < FLASHCODE_* environment.
JSON keys are camelCase (`maxNewTokens`); fields are snake_case. A bad value is reported once and
replaced by its default; it never stops the server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
LOG_LEVELS = ("error", "warning", "info", "debug")
DEFAULT_SECRET_GLOBS = (".env", ".env.*", "*.pem", "*.key", "*secret*", "*credentials*", "id_rsa*")


@dataclass(kw_only=True)
class CacheSettings:
    enabled: bool = True
    max_size_mb: int = 256  # disk budget of the completion cache
    directory: str = ""  # "" = the user cache directory
    exclude_globs: list[str] = field(default_factory=list)  # on top of DEFAULT_SECRET_GLOBS
    learn_workspace: bool = True  # mine the workspace's files for patterns, not just open ones


@dataclass(kw_only=True)
class TestSettings:
    run_generated: bool = True  # run candidate tests and keep only passing ones
    timeout_seconds: int = 60  # per test run
    python: str = ""  # interpreter for running tests; "" = the one running the server


@dataclass(kw_only=True)
class Settings:
    model_path: str = ""  # "flash" tier for inline completion; "" = the embedded default model
    pro_model_path: str = ""  # "pro" tier for tests and docstrings; "" = the flash model
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # onnxruntime intra-op threads; 0 = physical cores
    max_new_tokens: int = 64
    context_budget: int = 1024  # prompt tokens
    enabled_languages: list[str] = field(default_factory=lambda: ["*"])
    fim_template: str = ""  # "" = chosen from the tokenizer's special tokens
    deadline_ms: int = 3000  # a completion that takes longer is cut and returned as it is
    int8_complexity: int = (
        10  # scopes more complex than this go to an int8 variant when there is one
    )
    cache: CacheSettings = field(default_factory=CacheSettings)
    tests: TestSettings = field(default_factory=TestSettings)
    log_level: str = "info"

    def language_enabled(self, language_id: str) -> bool:
        return "*" in self.enabled_languages or language_id in self.enabled_languages


class SettingsError(ValueError):
    """A settings value that cannot be used; the message names the key and what is allowed."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _validate(settings: Settings) -> list[str]:
    problems = []
    if settings.device not in DEVICES:
        problems.append(f"device must be one of {', '.join(DEVICES)}, not {settings.device!r}")
        settings.device = "auto"
    if settings.log_level not in LOG_LEVELS:
        problems.append(
            f"logLevel must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}"
        )
        settings.log_level = "info"
    for name, low, high in (
        ("max_new_tokens", 1, 1024),
        ("context_budget", 64, 32768),
        ("deadline_ms", 50, 120_000),
        ("threads", 0, 256),
    ):
        value = getattr(settings, name)
        if not low <= value <= high:
            problems.append(f"{_camel(name)} must be between {low} and {high}, not {value}")
            setattr(settings, name, getattr(Settings(), name))
    return problems


def _coerce(value: Any, kind: Any, key: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind == list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    raise SettingsError(f"{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def apply(target: Any, data: Mapping[str, Any], problems: list[str], path: str = "") -> None:
    """Write the known keys of `data` onto the dataclass `target`; unknown keys are reported."""
    hints = get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for raw_key, value in data.items():
        name = _snake(raw_key)
        key = f"{path}{raw_key}"
        if name not in names:
            problems.append(f"unknown setting {key!r}")
            continue
        if value is None:
            continue
        kind = hints[name]
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            if isinstance(value, Mapping):
                apply(current, value, problems, f"{key}.")
            else:
                problems.append(f"{key}: expected an object, got {value!r}")
            continue
        try:
            setattr(target, name, _coerce(value, kind, key))
        except SettingsError as exc:
            problems.append(str(exc))


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from FLASHCODE_* variables; a double underscore opens a section.

    FLASHCODE_MODEL_PATH=x gives {"modelPath": "x"}, FLASHCODE_CACHE__ENABLED=0 gives
    {"cache": {"enabled": "0"}}.
    """
    result: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("FLASHCODE_") or key in ("FLASHCODE_CONFIG",):
            continue
        parts = key[len("FLASHCODE_") :].lower().split("__")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(_camel(part), {})
        node[_camel(parts[-1])] = value
    return result


def config_file_path(environ: Mapping[str, str] = os.environ) -> Path:
    explicit = environ.get("FLASHCODE_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(platformdirs.user_config_dir("flashcode")) / "config.json"


def read_config_file(path: Path, problems: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"config file {path} was ignored: {exc}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"config file {path} was ignored: it must hold a JSON object")
        return {}
    return data


def unwrap_section(data: Any) -> Mapping[str, Any]:
    """Clients send either {"flashcode": {...}} or the section itself."""
    if not isinstance(data, Mapping):
        return {}
    section = data.get("flashcode")
    return section if isinstance(section, Mapping) else data


def merge(
    *layers: Mapping[str, Any] | None,
    environ: Mapping[str, str] = os.environ,
    config_file: Path | None = None,
) -> tuple[Settings, list[str]]:
    """Build Settings from the config file, the given layers (lowest first) and the environment.

    Returns the settings and the list of problems found (empty when everything was valid).
    """
    problems: list[str] = []
    settings = Settings()
    apply(settings, read_config_file(config_file or config_file_path(environ), problems), problems)
    for layer in layers:
        if layer:
            apply(settings, unwrap_section(layer), problems)
    # Other tools share the FLASHCODE_ prefix (test harnesses, wrappers): a name we do not know
    # there goes to the log, not to the editor.
    from_env: list[str] = []
    apply(settings, env_overrides(environ), from_env, "FLASHCODE_")
    for problem in from_env:
        if problem.startswith("unknown setting"):
            log.info("environment: %s", problem)
        else:
            problems.append(problem)
    problems.extend(_validate(settings))
    return settings, problems
