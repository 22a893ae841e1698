"""The structured test prompt and the candidates built around it (prompts.structured)."""

from __future__ import annotations

import ast

import pytest

from prompts.calls import Call, calls_for, doctest_examples
from prompts.candidates import (
    assertion_stub,
    chat_candidates,
    clean_assertion,
    clean_expected,
    docstring_candidates,
    raises_candidates,
    value_stub,
)
from prompts.definitions import definition_at
from prompts.structured import TestSubject as Subject
from prompts.structured import build_test_prompt, detect_framework, render_chat
from prompts.testfile import render_tests

SOURCE = '''def scale(values: list[float], factor: float = 2.0, *, clip: bool = False) -> list:
    """Multiply every value.

    >>> scale([1.0, 2.0])
    [2.0, 4.0]
    >>> scale([1.0],
    ...       factor=3.0)
    [3.0]
    """
    if factor < 0:
        raise ValueError("negative factor")
    if clip and factor > 10:
        raise OverflowError("too big")
    return [v * factor for v in values]


class Counter:
    def __init__(self, start: int, step: int = 1) -> None:
        self.value = start

    def bump(self, times: int) -> int:
        if times < 0:
            raise ValueError(times)
        self.value += times
        return self.value
'''
EXAMPLE = "import pytest\n\n\ndef test_existing():\n    assert True\n"


def subject(name: str, owner: str | None = None) -> Subject:
    definition = definition_at(SOURCE, SOURCE.index(f"def {name}") + 5, "python")
    assert definition is not None
    owner_definition = None
    if owner:
        owner_definition = definition_at(SOURCE, SOURCE.index(f"class {owner}") + 7, "python")
    return Subject(definition, "pkg.mod", owner_definition)


@pytest.mark.parametrize(
    ("texts", "framework"),
    [
        ([EXAMPLE], "pytest"),
        (["import unittest\n\nclass T(unittest.TestCase):\n    pass\n"], "unittest"),
        (["def test_x():\n    assert 1\n"], "pytest"),
        ([], "pytest"),
    ],
)
def test_detects_the_project_framework(texts: list[str], framework: str) -> None:
    assert detect_framework(texts) == framework


def test_prompt_has_task_requirements_code_and_example() -> None:
    prompt = build_test_prompt(
        [subject("scale")], "pytest", "pkg/mod.py", "tests/test_x.py", EXAMPLE
    )
    system, user = prompt.messages()
    assert system["role"] == "system" and user["role"] == "user"
    content = user["content"]
    for heading in (
        "## Task",
        "## Requirements",
        "## Code under test (pkg/mod.py)",
        "tests/test_x.py",
    ):
        assert heading in content
    assert "- Use pytest" in content
    assert "No network access and no file-system side effects" in content
    assert "edge cases" in content and "error cases" in content
    assert "def scale(values: list[float]" in content and '"""Multiply every value.' in content
    assert "def test_existing" in content
    code = prompt.as_code()
    assert code.startswith("# Task: Write pytest unit tests for the function `scale`")
    assert "# - Use pytest" in code and "def test_existing():" in code
    ast.parse(code)  # a base model sees valid Python


def test_unittest_requirements_name_test_cases() -> None:
    prompt = build_test_prompt([subject("scale")], "unittest", "pkg/mod.py")
    assert any("unittest.TestCase" in item for item in prompt.requirements)
    assert prompt.example is None


def test_chat_template_is_applied() -> None:
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    prompt = build_test_prompt([subject("scale")], "pytest", "pkg/mod.py")
    rendered = render_chat(prompt.messages(), template)
    assert rendered.startswith("<|im_start|>system\n")
    assert rendered.endswith("<|im_start|>assistant\n")
    assert "## Requirements" in rendered


def test_doctest_examples_with_continuation_lines() -> None:
    definition = subject("scale").definition
    assert doctest_examples(definition.docstring) == [
        ("scale([1.0, 2.0])", "[2.0, 4.0]"),
        ("scale([1.0],\n      factor=3.0)", "[3.0]"),
    ]
    assert doctest_examples(">>> f(-1)\nTraceback (most recent call last):\nValueError") == [
        ("f(-1)", None)
    ]


def test_calls_come_from_doctests_annotations_and_defaults() -> None:
    calls = calls_for(subject("scale"))
    assert calls[0] == Call("normal", (), "scale([1.0, 2.0])", "[2.0, 4.0]")
    expressions = [c.expression for c in calls]
    assert "scale([1.5, 2.5, 4.0], 1.0, clip=True)" in expressions
    # A skipped default makes the next arguments keywords; keyword-only are always keywords.
    assert all("clip=" in e for e in expressions if "clip" in e)
    assert "scale([])" in expressions
    for expression in expressions:
        ast.parse(expression)


def test_method_calls_build_an_instance_with_required_arguments() -> None:
    calls = calls_for(subject("bump", owner="Counter"))
    assert calls[0].setup == ("obj = Counter(5)",)
    assert calls[0].expression == "obj.bump(5)"
    assert "obj.bump(-1)" in [c.expression for c in calls]


def test_docstring_and_raises_candidates() -> None:
    target = subject("scale")
    calls = calls_for(target)
    examples = docstring_candidates(target, calls)
    assert [c.body for c in examples] == ["assert scale([1.0, 2.0]) == [2.0, 4.0]"]
    assert examples[0].origin == "docstring"
    raises = raises_candidates(target, calls, "pytest")
    assert {c.slug for c in raises} == {"raises_value_error", "raises_overflow_error"}
    assert all(c.uses_pytest and c.origin == "structure" for c in raises)
    assert raises[0].body.startswith("with pytest.raises(ValueError):\n    scale(")
    unittest_style = raises_candidates(target, calls, "unittest")
    assert unittest_style[0].body.startswith("with self.assertRaises(ValueError):")


def test_expected_values_that_cannot_fail_are_rejected() -> None:
    target = subject("scale")
    call = Call("normal", (), "scale([1.0])")
    assert clean_expected(" [2.0]  # doubled\nmore", call, target) == "[2.0]"
    assert clean_expected("scale([1.0])", call, target) is None
    assert clean_expected("x ==", call, target) is None
    assert clean_expected("1 == 1", call, target) is None
    assert clean_expected("", call, target) is None


def test_assertions_must_compare_a_call_with_a_value() -> None:
    target = subject("scale")
    stub = assertion_stub(target)
    assert stub == "assert scale("
    assert clean_assertion("[1.0]) == [2.0]", stub, target) == "assert scale([1.0]) == [2.0]"
    assert clean_assertion("[1.0]) == scale([1.0])", stub, target) is None
    assert clean_assertion("[1.0])", stub, target) is None
    assert clean_assertion("[1.0]) == [", stub, target) is None


def test_chat_reply_tests_are_extracted_and_attributed() -> None:
    reply = (
        "Here you go:\n```python\nimport pytest\nfrom pkg.mod import scale\n\n"
        "def test_doubles():\n    assert scale([1.0]) == [2.0]\n\n"
        "def helper():\n    return 1\n\n"
        "def test_unrelated():\n    assert 1 + 1 == 2\n```\n"
    )
    candidates = chat_candidates(reply, {"scale": "scale"})
    assert [(c.slug, c.body, c.origin) for c in candidates] == [
        ("doubles", "assert scale([1.0]) == [2.0]", "model")
    ]
    assert chat_candidates("no code at all (", {"scale": "scale"}) == []


def test_rendered_tests_never_reuse_a_taken_name() -> None:
    target = subject("scale")
    raises = raises_candidates(target, calls_for(target), "pytest")[:2]
    taken = {"test_scale_raises_value_error"}
    code, names = render_tests(raises, "pytest", taken)
    assert names == ["test_scale_raises_value_error_2", "test_scale_raises_value_error_3"]
    ast.parse("import pytest\n" + code)
    code, names = render_tests(raises, "unittest", {"TestScale"}, "TestScale")
    assert code.startswith("class TestScale_2(unittest.TestCase):\n    def test_scale_raises")
    assert names[0].startswith("TestScale_2.")
    ast.parse(code)


def test_assert_equal_holes_read_back_as_plain_asserts() -> None:
    target = subject("scale")
    call = Call("normal", (), "scale([1.0])")
    assert value_stub(call, "assertEqual") == "self.assertEqual(scale([1.0]), "
    assert clean_expected("[2.0])", call, target) == "[2.0]"
    assert clean_expected("(1, 2))  # pair", call, target) == "(1, 2)"
    assert clean_expected("scale([1.0]))", call, target) is None
    stub = assertion_stub(target, "assertEqual")
    assert stub == "self.assertEqual(scale("
    assert clean_assertion("[1.0]), [2.0])", stub, target) == "assert scale([1.0]) == [2.0]"
    assert clean_assertion("[1.0]), scale([1.0]))", stub, target) is None
    assert clean_assertion("[1.0]), [2.0], 'why')", stub, target) is None
    assert clean_assertion("[1.0])", stub, target) is None
