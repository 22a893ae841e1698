"""The definition under the cursor: parameters, docstring, raised exceptions, bases."""

from __future__ import annotations

from prompts.definitions import definition_at
from tests.unit.syntax_samples import INVENTORY, at


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
