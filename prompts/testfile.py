"""The test file: names for the kept tests, their imports, and their code in the framework.

Tests are functions for pytest or methods of one `unittest.TestCase` class, named after the
subject and what they check, never reusing a name the file already has.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence

from prompts.candidates import Candidate
from prompts.text import snake_case


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`... : the first not in `taken` (which it is added to)."""
    name, number = base, 2
    while name in taken:
        name = f"{base}_{number}"
        number += 1
    taken.add(name)
    return name


def test_name(candidate: Candidate, taken: set[str]) -> str:
    """A test function name for `candidate` not in `taken` (which it is added to)."""
    base = f"test_{snake_case(candidate.subject)}_{candidate.slug}".strip("_")
    return unique_name(re.sub(r"_+", "_", re.sub(r"\W", "_", base)), taken)


def _indent(body: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else "" for line in body.split("\n"))


def import_lines(module: str, candidates: Iterable[Candidate], framework: str) -> list[str]:
    names = sorted({n for c in candidates for n in c.names})
    lines = []
    if framework == "unittest":
        lines.append("import unittest")
    elif any(c.uses_pytest for c in candidates):
        lines.append("import pytest")
    if names:
        lines.append(f"from {module} import {', '.join(names)}")
    return lines


def render_tests(
    candidates: Sequence[Candidate],
    framework: str,
    taken: set[str],
    class_name: str = "",
) -> tuple[str, list[str]]:
    """(the test code, the test names) for `candidates`: functions, or one TestCase class.

    Names already in `taken` (tests the file already has) are never reused.
    """
    names = [test_name(c, taken) for c in candidates]
    if framework == "unittest":
        cls = unique_name(class_name or "TestGenerated", taken)
        methods = [
            f"    def {name}(self):\n{_indent(c.body, '        ')}"
            for name, c in zip(names, candidates, strict=True)
        ]
        code = f"class {cls}(unittest.TestCase):\n" + "\n\n".join(methods) + "\n"
        return code, [f"{cls}.{name}" for name in names]
    functions = [
        f"def {name}():\n{_indent(c.body, '    ')}\n"
        for name, c in zip(names, candidates, strict=True)
    ]
    return "\n\n".join(functions), names


def defined_names(test_text: str) -> set[str]:
    """Top-level function and class names of an existing test file (to avoid shadowing them)."""
    try:
        tree = ast.parse(test_text)
    except SyntaxError:
        return set(re.findall(r"^(?:def|class)\s+(\w+)", test_text, re.M))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
