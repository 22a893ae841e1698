"""Syntax facts from tree-sitter: languages, scopes, complexity, multi-line, definitions."""

from __future__ import annotations

import pytest

from prompts.syntax import definition_at, language_of, parses, scope_at, wants_multiline

INVENTORY = '''\
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Item:
    name: str
    quantity: int = 0


class Inventory(Base, metaclass=Registry):
    """Items in stock, by name."""

    def __init__(self, owner: str, *, limit: int = 100) -> None:
        self.owner = owner
        self.items: dict[str, Item] = {}

    def add(self, item: Item) -> None:
        if item.quantity < 0 or not item.name:
            raise ValueError(f"bad item {item.name}")
        elif item.name in self.items:
            self.items[item.name].quantity += item.quantity
        else:
            self.items[item.name] = item

    @staticmethod
    def parse(line: str, /, sep: str = ",", *fields: str, strict=False, **extra) -> Item:
        """Read an item from one CSV line."""
        name, quantity = line.split(sep)
        try:
            return Item(name, int(quantity))
        except ValueError as error:
            raise errors.ParseError(line) from error

    def total(self):


def summarize(inventory):
    return sum(item.quantity for item in inventory.items.values() if item.quantity)
'''.replace("def total(self):\n", "def total(self):\n        \n")  # the cursor's blank line


def at(text: str, marker: str, delta: int = 0) -> int:
    return text.index(marker) + delta


# --- languages ---


@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        ("python", "app/models.py", "python"),
        ("typescriptreact", "ui/App.tsx", "tsx"),
        ("javascriptreact", "ui/App.jsx", "javascript"),
        ("c", "src/main.c", "cpp"),
        ("plaintext", "lib/stack.rs", "rust"),  # an unhelpful id falls back to the extension
        ("", "cmd/main.go", "go"),
        ("ruby", "app.rb", None),
    ],
)
def test_language_of_uses_the_editor_id_then_the_extension(
    language_id: str, path: str, expected: str | None
) -> None:
    assert language_of(language_id, path) == expected


# --- scopes ---


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


# --- single line or several ---


def split(text_with_cursor: str) -> tuple[str, int]:
    """A text with `|` marking the cursor, as (text, offset)."""
    return text_with_cursor.replace("|", "", 1), text_with_cursor.index("|")


@pytest.mark.parametrize(
    ("text_with_cursor", "expected"),
    [
        ("def area(r):|\n\nprint(1)\n", True),  # end of the def line
        ("def area(r):\n    |\n", True),  # blank first line of an empty body
        ("class Point:\n    |\n", True),
        ('def area(r):\n    """Circle area."""\n    |\n', True),  # only a docstring so far
        ("# parse the header line\n|\n", True),  # under a comment describing the code
        ("total = compute(price, |)\n", False),  # mid-line
        ("def area(r):\n    x = r * r\n    |\n    return x\n", False),  # body not empty
        ("if ready:|\n    go()\n", False),  # the block already has a body
        ('config = {"name":|\n', False),  # a colon that opens no block
        ("import os|\n", False),
    ],
)
def test_wants_multiline_in_python(text_with_cursor: str, expected: bool) -> None:
    text, cursor = split(text_with_cursor)
    assert wants_multiline(text, cursor, "python") is expected


def test_wants_multiline_between_empty_braces_in_javascript() -> None:
    assert wants_multiline(*split("function sum(xs) {|}\n"), "javascript")
    assert wants_multiline(*split("function sum(xs) {\n  |\n}\n"), "javascript")
    assert not wants_multiline(*split("const n = xs.len|gth;\n"), "javascript")
    assert not wants_multiline(*split("const n = xs.length;|\n"), "javascript")


def test_wants_multiline_without_a_grammar_uses_the_text() -> None:
    assert not wants_multiline(*split("def greet(name)\n  |\nend\n"), "ruby")
    assert wants_multiline(*split("fn main() {|\n"), "unknown-language")


# --- parses ---


def test_parses_tells_broken_code_from_good_code() -> None:
    assert parses(INVENTORY.replace("    def total(self):\n        \n", ""), "python")
    assert not parses("def broken(:\n    return\n", "python")
    assert parses("fn main() { let x = 1; }", "rust")
    assert not parses("fn main() { let x = ; }", "rust")


# --- the definition under the cursor ---


def test_definition_of_a_python_method_with_every_kind_of_parameter() -> None:
    definition = definition_at(INVENTORY, at(INVENTORY, "name, quantity ="), "python")
    assert definition is not None
    assert (definition.kind, definition.name, definition.qualified_name) == (
        "method",
        "parse",
        "Inventory.parse",
    )
    params = {p.name: p for p in definition.parameters}
    assert list(params) == ["line", "sep", "fields", "strict", "extra"]
    assert (params["line"].annotation, params["line"].kind) == ("str", "positional_only")
    assert (params["sep"].default, params["sep"].kind) == ('","', "positional")
    assert params["fields"].kind == "var_positional"
    assert (params["strict"].default, params["strict"].kind) == ("False", "keyword_only")
    assert params["extra"].kind == "var_keyword"
    assert definition.return_annotation == "Item"
    assert definition.docstring == "Read an item from one CSV line."
    assert definition.decorators == ("staticmethod",)
    assert definition.raises == ("errors.ParseError",)
    assert (definition.indent, definition.body_indent) == ("    ", "        ")
    assert definition.text.startswith("@staticmethod\n    def parse(")


def test_definition_lists_raised_exceptions_in_order_without_nested_functions() -> None:
    text = (
        "def load(path):\n"
        "    if not path:\n        raise ValueError('empty path')\n"
        "    def retry():\n        raise TimeoutError\n"
        "    raise KeyError(path)\n"
    )
    definition = definition_at(text, at(text, "if not"), "python")
    assert definition is not None
    assert definition.raises == ("ValueError", "KeyError")


def test_definition_of_init_marks_self_and_keyword_only_parameters() -> None:
    definition = definition_at(INVENTORY, at(INVENTORY, "self.owner = owner"), "python")
    assert definition is not None
    kinds = [(p.name, p.kind) for p in definition.parameters]
    assert kinds == [("self", "self"), ("owner", "positional"), ("limit", "keyword_only")]
    assert definition.return_annotation == "None"


def test_definition_of_a_class_has_bases_methods_and_constructor_parameters() -> None:
    definition = definition_at(INVENTORY, at(INVENTORY, "Items in stock"), "python")
    assert definition is not None
    assert definition.kind == "class"
    assert definition.bases == ("Base", "metaclass=Registry")
    assert definition.methods == ("__init__", "add", "parse", "total")
    assert [p.name for p in definition.parameters] == ["owner", "limit"]
    assert definition.docstring == "Items in stock, by name."


def test_cursor_on_a_decorator_selects_the_decorated_function() -> None:
    definition = definition_at(INVENTORY, at(INVENTORY, "@staticmethod", 3), "python")
    assert definition is not None and definition.name == "parse"


def test_definition_without_docstring_tells_where_one_goes() -> None:
    text = "async def fetch(url: str, retries: int = 3) -> bytes:\n    return await get(url)\n"
    definition = definition_at(text, at(text, "return"), "python")
    assert definition is not None
    assert definition.is_async and definition.docstring is None
    assert text[: definition.header_end_offset].endswith("-> bytes:")
    assert text[definition.body_start_offset :].startswith("return await")
    assert definition.body_indent == "    "


def test_definition_outside_any_function_is_none() -> None:
    assert definition_at(INVENTORY, at(INVENTORY, "log = "), "python") is None


def test_definition_in_javascript_reads_jsdoc_and_thrown_errors() -> None:
    text = (
        '/**\n * Parses a price like "$3.50".\n */\n'
        "function parsePrice(text, currency = 'USD') {\n"
        "  if (!text) throw new TypeError('empty');\n"
        "  return Number(text.slice(1));\n"
        "}\n"
    )
    definition = definition_at(text, at(text, "return"), "javascript")
    assert definition is not None
    assert definition.name == "parsePrice"
    assert [(p.name, p.default) for p in definition.parameters] == [
        ("text", None),
        ("currency", "'USD'"),
    ]
    assert definition.docstring == 'Parses a price like "$3.50".'
    assert definition.raises == ("TypeError",)
    assert definition.body_indent == "  "


def test_definition_in_java_includes_throws_clause_and_types() -> None:
    text = (
        "class Files {\n"
        "  String read(Path path, int limit) throws IOException {\n"
        "    return Files.readString(path);\n"
        "  }\n"
        "}\n"
    )
    definition = definition_at(text, at(text, "return"), "java")
    assert definition is not None
    assert definition.qualified_name == "Files.read"
    assert [(p.name, p.annotation) for p in definition.parameters] == [
        ("path", "Path"),
        ("limit", "int"),
    ]
    assert definition.return_annotation == "String"
    assert definition.raises == ("IOException",)
