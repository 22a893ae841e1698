"""Test candidates: one test function each, from the docstring, the structure or the model.

The model proposes the expected value of a call (`value_stub`, `clean_expected`) or a whole
assertion (`assertion_stub`, `clean_assertion`); a chat model answers with test functions
(`chat_candidates`). Exceptions raised in the body give error-case tests without the model, and
doctests give tests with their expected values. Running the candidates decides what is kept;
`Candidate.origin` records where each came from so that reports can say what the model
contributed.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from prompts.calls import Call, setup_and_callee
from prompts.structured import TestSubject
from prompts.text import snake_case


@dataclass(frozen=True)
class Candidate:
    """One test function, framework-neutral: `body` holds statements with no indentation."""

    subject: str  # the label of the function or method under test
    slug: str  # what the test checks, for its name: "normal", "edge", "raises_value_error"
    body: str
    origin: str  # "docstring" | "model" | "structure"
    uses_pytest: bool = False  # needs `import pytest` (pytest.raises)
    names: tuple[str, ...] = field(default=())  # the import names it needs
    key: str = ""  # candidates with the same subject and key test the same thing: keep one


def _body(setup: Sequence[str], *lines: str) -> str:
    return "\n".join([*setup, *lines])


def docstring_candidates(subject: TestSubject, calls: Iterable[Call]) -> list[Candidate]:
    """Tests whose expected values the docstring's examples give."""
    return [
        Candidate(
            subject.label,
            "example",
            _body(call.setup, f"assert {call.expression} == {call.expected}"),
            "docstring",
            names=(subject.import_name,),
            key=call.expression,
        )
        for call in calls
        if call.expected is not None
    ]


def raises_candidates(
    subject: TestSubject, calls: Iterable[Call], framework: str
) -> list[Candidate]:
    """Error-case tests: each exception the body raises, tried on the edge-case calls."""
    result: list[Candidate] = []
    for exception in subject.definition.raises:
        if not isinstance(getattr(builtins, exception, None), type):
            continue  # a project exception would need its own import; the model can try it
        slug = "raises_" + snake_case(exception)
        for call in calls:
            if call.expected is not None:
                continue
            if framework == "pytest":
                check = f"with pytest.raises({exception}):\n    {call.expression}"
            else:
                check = f"with self.assertRaises({exception}):\n    {call.expression}"
            result.append(
                Candidate(
                    subject.label,
                    slug,
                    _body(call.setup, check),
                    "structure",
                    uses_pytest=framework == "pytest",
                    names=(subject.import_name,),
                    key=slug,
                )
            )
    return result


# Holes are written the way the model has seen tests most: a model trained on the standard
# library knows `self.assertEqual(value, expected)` far better than pytest's `assert`. The kept
# test is written in the project's framework whatever the hole looked like.
HoleStyle = Literal["assert", "assertEqual"]


def value_stub(call: Call, style: HoleStyle = "assert") -> str:
    """The start of a test line whose expected value the model writes."""
    line = f"assert {call.expression} == "
    if style == "assertEqual":
        line = f"self.assertEqual({call.expression}, "
    return "\n".join([*call.setup, line])


def assertion_stub(subject: TestSubject, style: HoleStyle = "assert") -> str:
    """The start of an assertion the model completes with arguments and expected value."""
    setup, callee = setup_and_callee(subject)
    line = f"self.assertEqual({callee}(" if style == "assertEqual" else f"assert {callee}("
    return "\n".join([*setup, line])


def _first_line(raw: str) -> str:
    text = raw.split("\n", 1)[0].strip().rstrip(";").strip()
    return re.sub(r"\s+#.*$", "", text)


def clean_expected(raw: str, call: Call, subject: TestSubject) -> str | None:
    """The model's expected value as an expression, or None when it is not one we can use.

    The value may run on into the `)` that closes an assertEqual call: it ends at the first
    closing parenthesis after which the text still parses. Rejected: anything that is not an
    expression, and anything that calls the subject again (`f(x) == f(x)` cannot fail).
    """
    text = _first_line(raw)
    cuts = [len(text)] + [i for i, char in enumerate(text) if char == ")"]
    for cut in cuts:
        value = text[:cut].strip()
        if not value:
            continue
        try:
            tree = ast.parse(value, mode="eval")
        except SyntaxError:
            continue
        if _mentions(tree, subject) or isinstance(tree.body, ast.Compare | ast.BoolOp):
            return None
        return value
    return None


def clean_assertion(raw: str, stub: str, subject: TestSubject) -> str | None:
    """The completed assertion (stub's last line + the model's text) as an `assert` line.

    It must compare one call of the subject with a value that does not call it again, as
    `assert call == value` or `self.assertEqual(call, value)`.
    """
    line = re.sub(r"\s+#.*$", "", stub.split("\n")[-1] + raw.split("\n", 1)[0]).rstrip()
    try:
        tree = ast.parse(line)
    except SyntaxError:
        return None
    if len(tree.body) != 1:
        return None
    statement = tree.body[0]
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        function = statement.value.func
        arguments = statement.value.args
        if not (isinstance(function, ast.Attribute) and function.attr == "assertEqual"):
            return None
        if len(arguments) != 2 or statement.value.keywords:
            return None
        left, right = arguments
        if not _mentions(left, subject) or _mentions(right, subject):
            return None
        return f"assert {ast.unparse(left)} == {ast.unparse(right)}"
    if not isinstance(statement, ast.Assert):
        return None
    test = statement.test
    if not isinstance(test, ast.Compare) or len(test.comparators) != 1:
        return None
    if not isinstance(test.ops[0], ast.Eq | ast.NotEq | ast.Is | ast.IsNot | ast.In | ast.NotIn):
        return None
    if not _mentions(test.left, subject) or _mentions(test.comparators[0], subject):
        return None
    return line


def _mentions(tree: ast.AST, subject: TestSubject) -> bool:
    names = {subject.definition.name, subject.import_name, "obj"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            return True
        if isinstance(node, ast.Attribute) and node.attr == subject.definition.name:
            return True
    return False


def model_candidate(subject: TestSubject, call: Call, expected: str, case: str) -> Candidate:
    return Candidate(
        subject.label,
        case,
        _body(call.setup, f"assert {call.expression} == {expected}"),
        "model",
        names=(subject.import_name,),
        key=call.expression,
    )


def assertion_candidate(subject: TestSubject, stub: str, line: str) -> Candidate:
    """A test from an assertion line that clean_assertion accepted."""
    setup = stub.split("\n")[:-1]
    left = line.split("==", 1)[0].removeprefix("assert").strip()
    return Candidate(
        subject.label,
        "model",
        _body(setup, line),
        "model",
        names=(subject.import_name,),
        key=left,
    )


def chat_candidates(reply: str, subject_names: Mapping[str, str]) -> list[Candidate]:
    """Test functions from a chat model's reply (a ```python block, or the whole reply).

    `subject_names` maps import names to subject labels; a test is attributed to the first
    subject it calls. Module-level imports in the reply are dropped: the test file has its own.
    """
    blocks = re.findall(r"```(?:python|py)?\n(.*?)```", reply, re.S) or [reply]
    result: list[Candidate] = []
    for block in blocks:
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue
        functions: list[ast.FunctionDef] = []
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                functions += [n for n in node.body if isinstance(n, ast.FunctionDef)]
            elif isinstance(node, ast.FunctionDef):
                functions.append(node)
        for function in functions:
            if not function.name.startswith("test"):
                continue
            called = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
            subject = next((label for name, label in subject_names.items() if name in called), None)
            if subject is None:
                continue
            body = "\n".join(ast.unparse(statement) for statement in function.body)
            uses_self = any(a.arg == "self" for a in function.args.args)
            if uses_self and "self." in body and "self.assert" not in body:
                continue
            result.append(
                Candidate(
                    subject,
                    snake_case(function.name.removeprefix("test").strip("_")) or "model",
                    body,
                    "model",
                    uses_pytest="pytest." in body,
                    names=tuple(n for n in subject_names if n in called),
                    key=function.name,
                )
            )
    return result
