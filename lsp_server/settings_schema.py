"""The JSON Schema of the settings, written from the `Settings` dataclasses themselves.

`flashcode settings schema` prints it; the editors' declarations (VS Code's package.json, the
Neovim help) are kept equal to it by tests, so the schema is the one list of what can be set.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from lsp_server.settings import Settings, camel_key, literal_choices

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _value_schema(kind: Any) -> dict[str, Any]:
    choices = literal_choices(kind)
    if choices is not None:
        return {"type": "string", "enum": list(choices)}
    if kind == list[str]:
        return {"type": "array", "items": {"type": "string"}}
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    assert kind in names, f"no JSON Schema type for settings of type {kind}"
    return {"type": names[kind]}


def _object_schema(kind: type[Any]) -> dict[str, Any]:
    hints = get_type_hints(kind)
    defaults = kind()
    properties: dict[str, Any] = {}
    for spec in dataclasses.fields(kind):
        assert "description" in spec.metadata, f"{kind.__name__}.{spec.name} needs a description"
        if dataclasses.is_dataclass(hints[spec.name]):
            prop = _object_schema(hints[spec.name])
        else:
            prop = _value_schema(hints[spec.name])
            prop["default"] = getattr(defaults, spec.name)
            if spec.metadata["between"] is not None:
                prop["minimum"], prop["maximum"] = spec.metadata["between"]
        prop["description"] = spec.metadata["description"]
        properties[camel_key(spec.name)] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the "flashcode" settings section, written from `Settings` itself."""
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "flashcode settings",
        **_object_schema(Settings),
    }
