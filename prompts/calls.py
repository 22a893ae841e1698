"""The calls a generated test makes, derived from the structure of the code under test.

Arguments come from doctests, defaults, annotations and parameter names (`calls_for`): a normal
call, one that leaves defaults alone, and edge cases (empty, zero, negative) one parameter at a
time. A method is called on a fresh instance built from its class's constructor parameters.
A doctest's output is the one expected value known without running anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from prompts.definitions import Parameter
from prompts.structured import TestSubject


@dataclass(frozen=True)
class Call:
    """One call of the subject, written as Python, with what is known of its result."""

    case: str  # "normal" | "edge" | "error"
    setup: tuple[str, ...]  # statements before the call (constructing the instance)
    expression: str  # `clamp(5, 2, 10)` or `obj.add("apple", 3)`
    expected: str | None = None  # from a doctest: the value the docstring promises


# Sample values by annotation: (normal values, one per parameter position), (edge values).
_SAMPLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "int": (("5", "2", "10", "3"), ("0", "-1")),
    "float": (("2.5", "1.0", "10.0", "4.0"), ("0.0", "-1.5")),
    "complex": (("1+2j",), ("0j",)),
    "str": (('"hello world"', '"abc"', '"x"', '"Data"'), ('""', '" "')),
    "bytes": (('b"hello"',), ('b""',)),
    "bool": (("True", "False"), ("False",)),
    "list": (("[3, 1, 2]",), ("[]",)),
    "tuple": (("(1, 2)",), ("()",)),
    "dict": (('{"a": 1, "b": 2}',), ("{}",)),
    "set": (("{1, 2, 3}",), ("set()",)),
    "frozenset": (("frozenset({1, 2})",), ("frozenset()",)),
}
_ELEMENT_SAMPLES = {
    "int": ("[3, 1, 2]", "[]"),
    "float": ("[1.5, 2.5, 4.0]", "[]"),
    "str": ('["b", "a", "c"]', "[]"),
}
_NAME_HINTS: tuple[tuple[str, str], ...] = (
    (r"^(n|i|j|k|count|size|index|num|number|width|height|length|limit|depth|\w+_count)$", "int"),
    (r"^(x|y|z|value|ratio|rate|amount|price|total|low|high)$", "float"),
    (r"^(s|text|name|word|string|title|path|prefix|suffix|sep|key|label|line)$", "str"),
    (r"^(items|values|xs|numbers|elements|seq|sequence|\w+s)$", "list"),
    (r"^(flag|enabled|strict|verbose|is_\w+|\w+_enabled)$", "bool"),
)


def _base_type(annotation: str | None, name: str) -> tuple[str, str | None]:
    """(container or scalar type name, element type name) from an annotation or a name."""
    if annotation:
        text = annotation.replace("typing.", "").replace(" ", "")
        text = re.sub(r"^Optional\[(.*)\]$", r"\1", text)
        text = re.sub(r"\|None$|^None\|", "", text)
        match = re.match(r"^(\w+)(?:\[(\w+))?", text)
        if match:
            head = match.group(1).lower()
            head = {"sequence": "list", "iterable": "list", "mapping": "dict"}.get(head, head)
            return head, match.group(2)
    for pattern, kind in _NAME_HINTS:
        if re.match(pattern, name):
            return kind, None
    return "int", None


def sample_values(parameter: Parameter, position: int) -> tuple[str, tuple[str, ...]]:
    """(a normal value, edge values) to pass for `parameter`."""
    kind, element = _base_type(parameter.annotation, parameter.name)
    if kind in ("list", "tuple", "set", "frozenset") and element in _ELEMENT_SAMPLES:
        normal, edge = _ELEMENT_SAMPLES[element]
        if kind != "list":
            normal = f"{kind}({normal})"
            edge = f"{kind}()" if kind != "tuple" else "()"
        return normal, (edge,)
    normals, edges = _SAMPLES.get(kind, _SAMPLES["int"])
    return normals[position % len(normals)], edges


def doctest_examples(docstring: str | None) -> list[tuple[str, str | None]]:
    """(source, expected output or None) for each `>>>` example of a docstring."""
    if not docstring:
        return []
    examples: list[tuple[str, str | None]] = []
    lines = docstring.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith(">>> "):
            i += 1
            continue
        source = stripped[4:]
        i += 1
        while i < len(lines) and lines[i].strip().startswith("... "):
            source += "\n" + lines[i].strip()[4:]
            i += 1
        output: list[str] = []
        while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>"):
            output.append(lines[i].strip())
            i += 1
        expected = "\n".join(output) or None
        if expected is not None and expected.startswith("Traceback"):
            expected = None
        examples.append((source, expected))
    return examples


def _args_text(parameters: Sequence[Parameter], values: Sequence[str | None]) -> str:
    """Positional arguments until one is left to its default, keywords after that."""
    parts: list[str] = []
    by_keyword = False
    for parameter, value in zip(parameters, values, strict=True):
        if value is None:
            by_keyword = True
            continue
        if by_keyword or parameter.kind == "keyword_only":
            parts.append(f"{parameter.name}={value}")
        else:
            parts.append(value)
    return ", ".join(parts)


def setup_and_callee(subject: TestSubject) -> tuple[tuple[str, ...], str]:
    """(setup statements, the callee) for a function or a method on a fresh instance."""
    owner = subject.owner
    if owner is None:
        return (), subject.definition.name
    if "staticmethod" in subject.definition.decorators or "classmethod" in (
        subject.definition.decorators
    ):
        return (), f"{owner.name}.{subject.definition.name}"
    ctor = [p for p in owner.parameters if p.kind in ("positional", "positional_only")]
    ctor_values = [
        None if p.default is not None else sample_values(p, i)[0] for i, p in enumerate(ctor)
    ]
    setup = f"obj = {owner.name}({_args_text(ctor, ctor_values)})"
    return (setup,), f"obj.{subject.definition.name}"


def calls_for(subject: TestSubject, limit: int = 6) -> list[Call]:
    """The calls to test: doctest examples first, then normal, default and edge arguments."""
    definition = subject.definition
    setup, callee = setup_and_callee(subject)
    calls: list[Call] = []
    seen: set[str] = set()

    def add(call: Call) -> None:
        if call.expression not in seen and len(calls) < limit:
            seen.add(call.expression)
            calls.append(call)

    for source, expected in doctest_examples(definition.docstring):
        if re.match(rf"^{re.escape(definition.name)}\(", source) and "\n" not in source:
            add(Call("normal", setup, source.replace(definition.name, callee, 1), expected))
    params = [
        p
        for p in definition.parameters
        if p.kind in ("positional", "positional_only", "keyword_only")
    ]
    samples = [sample_values(p, i) for i, p in enumerate(params)]
    normal: list[str | None] = [value for value, _ in samples]
    add(Call("normal", setup, f"{callee}({_args_text(params, normal)})"))
    with_defaults = [
        None if p.default is not None else v for p, v in zip(params, normal, strict=True)
    ]
    add(Call("normal", setup, f"{callee}({_args_text(params, with_defaults)})"))
    for index, (_, edges) in enumerate(samples):
        for edge in edges:
            values = list(with_defaults)
            values[index] = edge
            add(Call("edge", setup, f"{callee}({_args_text(params, values)})"))
    return calls
