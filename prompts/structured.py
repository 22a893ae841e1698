"""The structured prompt for "Generate unit tests", and what it says about the project.

The prompt has four parts: the task, the requirements as bullets (the project's framework,
normal/edge/error cases, no network or file-system side effects), the code under test (signature,
docstring, body) and, when the project has one, an existing test file as an example. A model
whose tokenizer has a chat template gets it as chat messages (`StructuredPrompt.messages`,
`render_chat`); a base model gets it as a Python file whose comments carry the task
(`StructuredPrompt.as_code`), with each test left open at a fill-in-the-middle hole.

A small model cannot write a test suite from nothing: prompts.calls derives the calls to test
from the structure, prompts.candidates turns calls and model output into test candidates, and
prompts.testfile writes the kept ones into the project's test file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prompts.definitions import Definition

FRAMEWORKS = ("pytest", "unittest")
_MAX_EXAMPLE_CHARS = 1200  # an example test file is there for its style, not its content
_MAX_CODE_CHARS = 2400


def detect_framework(test_texts: Iterable[str]) -> str:
    """ "unittest" when the project's tests are TestCase classes that never use pytest."""
    unittest_votes = pytest_votes = 0
    for text in test_texts:
        if re.search(r"^\s*import pytest|^\s*from pytest\b|@pytest\.", text, re.M):
            pytest_votes += 1
        elif re.search(r"unittest\.TestCase|^\s*from unittest import", text, re.M):
            unittest_votes += 1
        elif re.search(r"^def test_\w+\(", text, re.M):
            pytest_votes += 1
    return "unittest" if unittest_votes > pytest_votes else "pytest"


def requirements(framework: str) -> tuple[str, ...]:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown test framework {framework!r}; allowed: {', '.join(FRAMEWORKS)}")
    style = (
        "plain `assert` statements in `test_` functions, `pytest.raises` for errors"
        if framework == "pytest"
        else "`unittest.TestCase` methods, `self.assertRaises` for errors"
    )
    return (
        f"Use {framework}, the framework the project already uses: {style}.",
        "Cover a normal case, edge cases (empty, zero, negative, boundaries) and error cases.",
        "Each test checks one behaviour and can fail: compare with a concrete expected value.",
        "No network access and no file-system side effects; no sleeping, no randomness.",
        "Import the code under test from its module; do not copy it into the test file.",
    )


@dataclass(frozen=True)
class TestSubject:
    """A function or method to test, and where it is imported from."""

    definition: Definition
    module: str  # dotted import path, "textkit.numbers"
    owner: Definition | None = None  # the class of a method (its constructor's parameters)

    @property
    def import_name(self) -> str:
        return self.owner.name if self.owner is not None else self.definition.name

    @property
    def label(self) -> str:
        return self.definition.qualified_name or self.definition.name


@dataclass(frozen=True)
class StructuredPrompt:
    task: str
    requirements: tuple[str, ...]
    code_path: str
    code: str  # the code under test: signature, docstring and body
    example_path: str | None = None
    example: str | None = None  # an existing test file of the project, trimmed

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages, for a model whose tokenizer has a chat template."""
        parts = [
            f"## Task\n{self.task}",
            "## Requirements\n" + "\n".join(f"- {item}" for item in self.requirements),
            f"## Code under test ({self.code_path})\n```python\n{self.code.rstrip()}\n```",
        ]
        if self.example:
            parts.append(
                f"## An existing test file of the project ({self.example_path}), for its style"
                f"\n```python\n{self.example.rstrip()}\n```"
            )
        parts.append("Answer with one ```python block holding only the test code.")
        return [
            {
                "role": "system",
                "content": "You write precise, runnable Python unit tests.",
            },
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def as_code(self) -> str:
        """The prompt as a Python file for a base model: the task and requirements as comments,
        the example and the code under test as code. Test code continues after it."""
        lines = [f"# Task: {self.task}", "# Requirements:"]
        lines += [f"# - {item}" for item in self.requirements]
        if self.example:
            lines += ["", f"# An existing test file of the project: {self.example_path}"]
            lines += [self.example.rstrip()]
        lines += ["", f"# The code under test, from {self.code_path}:", self.code.rstrip()]
        return "\n".join(lines) + "\n"


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit] + "\n# ...\n"


def build_test_prompt(
    subjects: Sequence[TestSubject],
    framework: str,
    code_path: str,
    example_path: str | None = None,
    example: str | None = None,
) -> StructuredPrompt:
    """The structured prompt for tests of `subjects` (one function, or the methods of a class)."""
    if not subjects:
        raise ValueError("no function or method to test")
    first = subjects[0]
    target = first.owner if first.owner is not None else first.definition
    kind = {"method": "method", "class": "class"}.get(target.kind, "function")
    names = ", ".join(f"`{s.label}`" for s in subjects)
    module = first.module
    task = f"Write {framework} unit tests for the {kind} `{target.name}` of `{module}` ({names})."
    code = _trim(target.text, _MAX_CODE_CHARS)
    return StructuredPrompt(
        task=task,
        requirements=requirements(framework),
        code_path=code_path,
        code=code,
        example_path=example_path if example else None,
        example=_trim(example, _MAX_EXAMPLE_CHARS) if example else None,
    )


def render_chat(
    messages: Sequence[Mapping[str, str]],
    chat_template: str,
    special_tokens: Mapping[str, str] | None = None,
) -> str:
    """Apply a tokenizer's Jinja chat template, as transformers does, in a sandbox."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(chat_template)
    return template.render(
        messages=list(messages), add_generation_prompt=True, **dict(special_tokens or {})
    )
