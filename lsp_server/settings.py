"""flashcode settings: one dataclass tree, merged from every place a user can set them.

Precedence, lowest first: defaults < config file (`<user config dir>/flashcode/config.json`)
< LSP initializationOptions < workspace/configuration("flashcode") < FLASHCODE_* environment.
JSON keys are camelCase (`maxNewTokens`); fields are snake_case. A bad value is reported once and
replaced by its default; it never stops the server.

Each field states everything about itself once, where it is declared: its type (a `Literal` for
a closed set of choices), its default, and in `about(...)` its range and the one-line description
that `flashcode settings schema` and the editors' settings pages show. One generic walk coerces
JSON and environment values, another checks choices and ranges, a third writes the JSON Schema;
none of them names a field, so no new setting can be missed by one of them. Choices and ranges
are checked on the merged result, not per layer: a bad value in a higher layer gives the default,
not a lower layer's value, and the user is told so.
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
from typing import Any, Literal, get_args, get_origin, get_type_hints

import platformdirs

from lsp_server.settings_sections import (
    Backend,
    CacheSettings,
    Device,
    FimTemplateName,
    LogLevel,
    RemoteSettings,
    TestSettings,
    UsageSettings,
    WorkspaceSettings,
    about,
)

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Settings:
    backend: Backend = field(
        default="local",
        metadata=about(
            "local: run the model in this process. remote: ask the OpenAI-compatible server at"
            " remote.url; nothing else leaves the machine."
        ),
    )
    model_path: str = field(
        default="",
        metadata=about(
            "Directory of the model used for inline completion (ONNX decoder + tokenizer.json)."
            " Empty: the embedded default model."
        ),
    )
    pro_model_path: str = field(
        default="",
        metadata=about(
            "Directory of the model used for unit tests and docstrings. Empty: the same as"
            " modelPath."
        ),
    )
    device: Device = field(
        default="auto",
        metadata=about("Where the model runs. auto: CUDA when a GPU is available, else the CPU."),
    )
    threads: int = field(
        default=0,
        metadata=about(
            "onnxruntime threads for one model step. 0: one per physical core.", between=(0, 256)
        ),
    )
    prompt_lookup: bool = field(
        default=True,
        metadata=about(
            "Speculative decoding: guess the next tokens from earlier occurrences of the code just"
            " written (the buffer, the workspace) and check the guess in one model step. Faster"
            " where code repeats; each token is still the model's own choice."
        ),
    )
    max_new_tokens: int = field(
        default=64,
        metadata=about("Most tokens generated for one inline suggestion.", between=(1, 1024)),
    )
    context_budget: int = field(
        default=1024,
        metadata=about(
            "Prompt size in tokens (code around the cursor plus related snippets).",
            between=(64, 32_768),
        ),
    )
    enabled_languages: list[str] = field(
        default_factory=lambda: ["*"],
        metadata=about('Language ids that get suggestions; "*" means all.'),
    )
    fim_template: FimTemplateName = field(
        default="",
        metadata=about(
            "Fill-in-the-middle prompt format. Empty: chosen from the model's tokenizer."
        ),
    )
    deadline_ms: int = field(
        default=3000,
        metadata=about(
            "A completion that takes longer than this, in milliseconds, is cut and returned as"
            " it is.",
            between=(50, 120_000),
        ),
    )
    int8_complexity: int = field(
        default=10,
        metadata=about(
            "Code scopes more complex than this (cyclomatic) go to the model's int8 variant,"
            " when it has one.",
            between=(0, 1000),
        ),
    )
    token_healing: bool = field(
        default=True,
        metadata=about(
            "Back the prompt off the partial word at the cursor and have the model write it"
            " again (token healing)."
        ),
    )
    warm_context: bool = field(
        default=True,
        metadata=about(
            "Prefill the prompt around the cursor in the background when a file is opened and"
            " when typing pauses, so that the next suggestion starts from it."
        ),
    )
    cache: CacheSettings = field(
        default_factory=CacheSettings, metadata=about("The completion cache.")
    )
    workspace: WorkspaceSettings = field(
        default_factory=WorkspaceSettings, metadata=about("The workspace index.")
    )
    tests: TestSettings = field(
        default_factory=TestSettings, metadata=about("Unit test generation.")
    )
    usage: UsageSettings = field(
        default_factory=UsageSettings, metadata=about("The local usage and cost report.")
    )
    remote: RemoteSettings = field(
        default_factory=RemoteSettings,
        metadata=about("The OpenAI-compatible server used when backend is remote."),
    )
    log_level: LogLevel = field(
        default="info",
        metadata=about(
            "Server log level. The log goes to stderr: VS Code shows it in the flashcode output,"
            " Neovim writes it to its LSP log."
        ),
    )

    def language_enabled(self, language_id: str) -> bool:
        return "*" in self.enabled_languages or language_id in self.enabled_languages


class SettingsError(ValueError):
    """A settings value that cannot be used; the message names the key and what is allowed."""


def camel_key(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def literal_choices(kind: Any) -> tuple[str, ...] | None:
    """The allowed values of a Literal field, None for any other type."""
    return get_args(kind) if get_origin(kind) is Literal else None


def _coerce(value: Any, kind: Any, key: str) -> Any:
    if literal_choices(kind) is not None:
        kind = str  # whether the string is one of the choices is checked on the merged result
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
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
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


def _shown(choice: str) -> str:
    return choice or '""'


def _violation(key: str, value: Any, kind: Any, between: tuple[int, int] | None) -> str | None:
    choices = literal_choices(kind)
    if choices is not None and value not in choices:
        return f"{key} must be one of {', '.join(map(_shown, choices))}, not {value!r}"
    if between is not None and not between[0] <= value <= between[1]:
        return f"{key} must be between {between[0]} and {between[1]}, not {value}"
    return None


def _check_constraints(target: Any, path: str = "") -> list[str]:
    """Check every Literal choice and range in the dataclass tree `target`; a value outside them
    is reported and replaced by the field's default."""
    problems: list[str] = []
    hints = get_type_hints(type(target))
    defaults = type(target)()
    for spec in dataclasses.fields(target):
        key = path + camel_key(spec.name)
        value = getattr(target, spec.name)
        if dataclasses.is_dataclass(value):
            problems.extend(_check_constraints(value, f"{key}."))
            continue
        problem = _violation(key, value, hints[spec.name], spec.metadata.get("between"))
        if problem:
            problems.append(problem)
            setattr(target, spec.name, getattr(defaults, spec.name))
    return problems


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
            node = node.setdefault(camel_key(part), {})
        node[camel_key(parts[-1])] = value
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
    problems.extend(_check_constraints(settings))
    return settings, problems
