"""The settings schema is written from Settings, and every editor declares exactly its keys.

`flashcode settings schema` prints it; VS Code's package.json and the Neovim help list the same
keys with the same types, defaults, choices and ranges, so that an editor cannot offer a setting
the server does not know, nor miss one it does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from inference.engine import VALID_DEVICES
from lsp_server.cli import build_parser, main
from lsp_server.settings import Device, FimTemplateName, LogLevel, Settings
from lsp_server.settings_schema import json_schema
from prompts.fim import template_names

EDITORS = Path(__file__).resolve().parents[2] / "editors"
# The extension's own keys: they pick and trace the server process, which never sees them.
VSCODE_CLIENT_ONLY = {"flashcode.serverCommand", "flashcode.pythonPath", "flashcode.trace.server"}
# What package.json may add to a property for VS Code's settings page alone.
VSCODE_PRESENTATION = {"scope", "order", "tags", "enumDescriptions", "markdownEnumDescriptions"}
SCHEMA_FIELDS = ("type", "items", "enum", "default", "minimum", "maximum", "description")


def flat_properties(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("cache.enabled", its schema) for every leaf setting, nested objects opened."""
    for key, prop in schema["properties"].items():
        if prop["type"] == "object":
            yield from flat_properties(prop, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", prop


def printed_schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with pytest.raises(SystemExit) as exit_:
        main(["settings", "schema"])
    assert exit_.value.code == 0
    schema: dict[str, Any] = json.loads(capsys.readouterr().out)
    return schema


def test_flashcode_settings_schema_prints_the_json_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema = printed_schema(capsys)
    assert schema == json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["maxNewTokens"] == {
        "type": "integer",
        "default": 64,
        "minimum": 1,
        "maximum": 1024,
        "description": "Most tokens generated for one inline suggestion.",
    }
    assert props["device"]["enum"] == ["auto", "cpu", "cuda"]
    assert props["enabledLanguages"]["items"] == {"type": "string"}
    assert props["cache"]["type"] == "object"
    assert props["cache"]["properties"]["maxSizeMb"]["minimum"] == 1
    assert props["tests"]["properties"]["timeoutSeconds"]["default"] == 60
    assert props["tests"]["properties"]["timeoutSeconds"]["minimum"] == 1


def test_the_schema_names_every_setting_with_its_default_and_a_description() -> None:
    defaults = Settings()
    leaves = dict(flat_properties(json_schema()))
    assert len(leaves) == 35
    for key, prop in leaves.items():
        value: Any = defaults
        for part in key.split("."):
            value = getattr(value, re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower())
        assert prop["default"] == value, key
        assert prop["description"].strip(), key


def test_the_fim_template_choices_are_prompts_template_names() -> None:
    assert get_args(FimTemplateName) == ("", *template_names())


def test_the_engine_accepts_the_same_devices_as_the_settings() -> None:
    # inference never imports lsp_server, so the engine keeps its own list.
    assert get_args(Device) == VALID_DEVICES


def test_flashcode_serve_takes_exactly_the_settings_devices_and_log_levels() -> None:
    parser = build_parser()
    for device in get_args(Device):
        assert parser.parse_args(["serve", "--device", device]).device == device
    for level in get_args(LogLevel):
        assert parser.parse_args(["serve", "--log-level", level]).log_level == level
    for wrong in (["--device", "tpu"], ["--log-level", "loud"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *wrong])


def test_vscode_declares_exactly_the_server_settings_and_its_own() -> None:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text(encoding="utf-8"))
    declared: dict[str, Any] = package["contributes"]["configuration"]["properties"]
    expected = {f"flashcode.{key}": prop for key, prop in flat_properties(json_schema())}
    assert declared.keys() >= VSCODE_CLIENT_ONLY
    assert declared.keys() - VSCODE_CLIENT_ONLY == expected.keys()
    for key, prop in expected.items():
        entry = declared[key]
        assert {f: entry.get(f) for f in SCHEMA_FIELDS} == {
            f: prop.get(f) for f in SCHEMA_FIELDS
        }, key
        assert entry.keys() <= set(SCHEMA_FIELDS) | VSCODE_PRESENTATION, key


def test_the_extension_keeps_back_exactly_its_own_keys() -> None:
    source = (EDITORS / "vscode" / "src" / "config.ts").read_text(encoding="utf-8")
    found = re.search(r"CLIENT_ONLY_KEYS[^=]*=\s*\[([^\]]*)\]", source)
    assert found, "config.ts must declare CLIENT_ONLY_KEYS"
    kept_back = set(re.findall(r'"([^"]+)"', found.group(1)))
    assert kept_back == {key.split(".")[1] for key in VSCODE_CLIENT_ONLY}


def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "{ " + ", ".join(map(_lua, value)) + " }" if value else "{}"
    return json.dumps(value)


def test_the_neovim_help_lists_every_setting_with_its_type_and_default() -> None:
    help_text = (EDITORS / "nvim" / "doc" / "flashcode.txt").read_text(encoding="utf-8")
    start = help_text.index("*flashcode-settings*")
    block = help_text[start : help_text.index("Change them at run time", start)]
    entries = re.findall(r"^    (\S+) +(string|integer|number|boolean|list) +(.+)$", block, re.M)
    listed = {key: (kind, default) for key, kind, default in entries}
    assert len(listed) == len(entries), "a key is listed twice"
    kinds = {
        "string": "string",
        "integer": "integer",
        "number": "number",
        "boolean": "boolean",
        "array": "list",
    }
    expected = {
        key: (kinds[prop["type"]], _lua(prop["default"]))
        for key, prop in flat_properties(json_schema())
    }
    assert listed == expected
    prose = " ".join(block.split())
    for key, prop in flat_properties(json_schema()):
        if "enum" in prop:
            assert "One of " + ", ".join(map(json.dumps, prop["enum"])) + "." in prose, key
        if "minimum" in prop:
            assert f"From {prop['minimum']} to {prop['maximum']}." in prose, key
