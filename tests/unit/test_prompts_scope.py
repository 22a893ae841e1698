"""The scope at the cursor: which function, method or class holds it, and its complexity."""

from __future__ import annotations

import pytest

from prompts.scope import scope_at
from tests.unit.syntax_samples import INVENTORY, at


def test_scope_of_a_method_names_it_and_calls_it_a_method() -> None:
    scope = scope_at(INVENTORY, at(INVENTORY, "elif item.name"), "python")
    assert (scope.kind, scope.name) == ("method", "add")
    assert INVENTORY[scope.start_offset :].startswith("def add(")
    assert not scope.body_empty


def test_scope_on_the_blank_first_line_of_an_empty_method_is_that_method() -> None:
    # tree-sitter ends `def total(self):` at its colon; the indented blank line still belongs.
    cursor = at(INVENTORY, "def total(self):\n        ", len("def total(self):\n        "))
    scope = scope_at(INVENTORY, cursor, "python")
    assert (scope.kind, scope.name, scope.body_empty) == ("method", "total", True)


def test_scope_below_a_function_at_column_zero_is_the_module() -> None:
    text = "def f():\n    return 1\n\n"
    assert scope_at(text, len(text), "python").kind == "module"


def test_scope_of_a_module_level_function() -> None:
    scope = scope_at(INVENTORY, at(INVENTORY, "sum(item"), "python")
    assert (scope.kind, scope.name) == ("function", "summarize")


def test_nested_function_is_a_function_even_inside_a_method() -> None:
    text = "class A:\n    def run(self):\n        def step(x):\n            return x\n"
    assert scope_at(text, at(text, "return x"), "python").kind == "function"


def test_offsets_are_string_indexes_even_after_non_ascii_text() -> None:
    text = 'GREETING = "héllo wörld ✓"\n\ndef shout(text):\n    return text.upper()\n'
    scope = scope_at(text, at(text, "return"), "python")
    assert scope.name == "shout"
    assert text[scope.start_offset : scope.end_offset].startswith("def shout")
    assert text[scope.start_offset : scope.end_offset].endswith("upper()")


@pytest.mark.parametrize(
    ("language", "text", "marker", "kind", "name"),
    [
        (
            "javascript",
            "class Cart {\n  total(items) {\n    return items.length;\n  }\n}\n",
            "return",
            "method",
            "total",
        ),
        (
            "typescript",
            "export const add = (a: number, b: number): number => {\n  return a + b;\n};\n",
            "return",
            "function",
            "add",
        ),
        (
            "java",
            "class Stack {\n  int pop() {\n    return items.remove(0);\n  }\n}\n",
            "return",
            "method",
            "pop",
        ),
        ("cpp", "void Shape::draw() {\n  render(this);\n}\n", "render", "method", "Shape::draw"),
        (
            "go",
            "func (s *Stack) Push(v int) {\n\ts.items = append(s.items, v)\n}\n",
            "append",
            "method",
            "Push",
        ),
        (
            "rust",
            "impl Stack {\n    fn push(&mut self, v: i32) {\n"
            "        self.items.push(v);\n    }\n}\n",
            "self.items",
            "method",
            "push",
        ),
    ],
)
def test_scope_in_other_languages(
    language: str, text: str, marker: str, kind: str, name: str
) -> None:
    scope = scope_at(text, at(text, marker), language)
    assert (scope.kind, scope.name) == (kind, name)


def test_cursor_after_a_closing_brace_is_outside_the_function() -> None:
    text = "function a() {\n  return 1;\n}\n"
    assert scope_at(text, at(text, "}", 1), "javascript").kind == "module"


# --- complexity ---


def test_cyclomatic_complexity_counts_every_branch() -> None:
    # if, `or`, elif -> 1 + 3
    scope = scope_at(INVENTORY, at(INVENTORY, "elif item.name"), "python")
    assert scope.complexity == 4


def test_complexity_counts_except_clauses_and_comprehension_filters() -> None:
    parse_scope = scope_at(INVENTORY, at(INVENTORY, "name, quantity ="), "python")
    assert parse_scope.complexity == 2  # except
    summary = scope_at(INVENTORY, at(INVENTORY, "sum(item"), "python")
    assert summary.complexity == 3  # for ... if ...


def test_complexity_in_javascript_counts_logical_operators_and_ternaries() -> None:
    text = (
        "function price(item, user) {\n"
        "  if (!item || item.stock === 0) return null;\n"
        "  const discount = user && user.vip ? 0.1 : 0;\n"
        "  for (const tax of item.taxes) { total += tax; }\n"
        "  return item.price * (1 - discount);\n"
        "}\n"
    )
    # if, ||, &&, ?:, for -> 1 + 5
    assert scope_at(text, at(text, "const discount"), "javascript").complexity == 6


def test_docstring_only_function_counts_as_empty() -> None:
    text = 'def slugify(title: str) -> str:\n    """Lower-case, dashes for spaces."""\n'
    assert scope_at(text, at(text, "Lower"), "python").body_empty
