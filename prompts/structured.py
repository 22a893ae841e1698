"""The structured prompt for "Generate unit tests", and the test candidates built around it.

The prompt has four parts: the task, the requirements as bullets (the project's framework,
normal/edge/error cases, no network or file-system side effects), the code under test (signature,
docstring, body) and, when the project has one, an existing test file as an example. A model
whose tokenizer has a chat template gets it as chat messages (`StructuredPrompt.messages`,
`render_chat`); a base model gets it as a Python file whose comments carry the task
(`StructuredPrompt.as_code`), with each test left open at a fill-in-the-middle hole.

A small model cannot write a test suite from nothing, so the calls come from the structure:
arguments from doctests, defaults, annotations and parameter names (`calls_for`); the model
proposes the expected value of each call (`value_stub`, `clean_expected`) or a whole assertion
(`assertion_stub`, `clean_assertion`). Exceptions raised in the body give error-case tests
without the model. Running the candidates decides what is kept; `Candidate.origin` records where
each came from so that reports can say what the model contributed.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prompts.definitions import Definition, Parameter

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


# --- calls derived from the structure ---------------------------------------------------------


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


def _callable(subject: TestSubject) -> tuple[tuple[str, ...], str]:
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
    setup, callee = _callable(subject)
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


# --- candidates -----------------------------------------------------------------------------


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


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace(".", "_")


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
        slug = "raises_" + _snake(exception)
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
HOLE_STYLES = ("assert", "assertEqual")


def value_stub(call: Call, style: str = "assert") -> str:
    """The start of a test line whose expected value the model writes."""
    line = f"assert {call.expression} == "
    if style == "assertEqual":
        line = f"self.assertEqual({call.expression}, "
    return "\n".join([*call.setup, line])


def assertion_stub(subject: TestSubject, style: str = "assert") -> str:
    """The start of an assertion the model completes with arguments and expected value."""
    setup, callee = _callable(subject)
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
                    _snake(function.name.removeprefix("test").strip("_")) or "model",
                    body,
                    "model",
                    uses_pytest="pytest." in body,
                    names=tuple(n for n in subject_names if n in called),
                    key=function.name,
                )
            )
    return result


# --- the test file ----------------------------------------------------------------------------


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
    base = f"test_{_snake(candidate.subject)}_{candidate.slug}".strip("_")
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
