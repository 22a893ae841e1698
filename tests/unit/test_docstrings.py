"""Docstring style detection and skeletons from the syntax tree (prompts.docstrings)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from prompts.definitions import Definition, definition_at
from prompts.docstrings import (
    clean_description,
    description_holes,
    detect_style,
    doc_fields,
    docstring_insertion,
    documented_parameters,
    render_docstring,
)

GOOGLE = '''def f(a):
    """Do it.

    Args:
        a: The thing.

    Returns:
        The result.
    """
'''
NUMPY = '''def f(a):
    """Do it.

    Parameters
    ----------
    a : int
        The thing.
    """
'''
REST = '''def f(a):
    """Do it.

    :param a: The thing.
    :returns: The result.
    """
'''

SOURCE = """import re


def percent(part: float, whole: float, digits: int = 1, *rest: int, **options: str) -> float:
    if whole == 0:
        raise ZeroDivisionError("whole is zero")
    return round(100 * part / whole, digits)


class Stock:
    def remove(self, name, quantity=1):
        if name not in self.counts:
            raise KeyError(name)
        self.counts[name] -= quantity

    def names(self):
        for name in self.counts:
            yield name


def one_liner(x): return x * 2
"""


def definition(name: str, text: str = SOURCE) -> Definition:
    found = definition_at(text, text.index(f"def {name}") + 5, "python")
    assert found is not None
    return found


def insert(text: str, found: Definition, style: str) -> str:
    docstring = render_docstring(found, style)
    insertion = docstring_insertion(text, found, docstring)
    return text[: insertion.start] + insertion.text + text[insertion.end :]


@pytest.mark.parametrize(
    ("texts", "style"),
    [
        ([GOOGLE], "google"),
        ([NUMPY], "numpy"),
        ([REST], "rest"),
        (["def f():\n    pass\n"], "google"),
        ([], "google"),
        ([NUMPY, NUMPY, GOOGLE], "numpy"),
    ],
)
def test_detects_the_style_most_used(texts: list[str], style: str) -> None:
    assert detect_style(texts) == style


@pytest.mark.parametrize("style", ["google", "numpy", "rest"])
def test_every_parameter_is_documented_and_the_result_parses(style: str) -> None:
    found = definition("percent")
    new_text = insert(SOURCE, found, style)
    tree = ast.parse(new_text)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    docstring = ast.get_docstring(function, clean=False) or ""
    names = ["part", "whole", "digits", "*rest", "**options"]
    assert documented_parameters(docstring, names, style) == set(names)
    assert "float" in docstring and "ZeroDivisionError" in docstring
    assert "Defaults to 1." in docstring
    # Only the docstring was added.
    assert new_text.replace(render_docstring(found, style), "", 1) == SOURCE


def test_google_layout_with_annotations() -> None:
    docstring = render_docstring(definition("percent"), "google", {"summary": "Share in %."})
    assert docstring == textwrap.indent(
        textwrap.dedent(
            '''\
            """Share in %.

            Args:
                part (float): The part.
                whole (float): The whole.
                digits (int, optional): The digits. Defaults to 1.
                *rest (int): The rest.
                **options (str): The options.

            Returns:
                float: The result of percent.

            Raises:
                ZeroDivisionError: When percent cannot proceed.
            """
            '''
        ),
        "    ",
        lambda line: bool(line.strip()),
    )


def test_method_is_indented_skips_self_and_has_no_return_section() -> None:
    found = definition("remove")
    docstring = render_docstring(found, "numpy")
    assert docstring.startswith('        """')
    assert "self" not in docstring
    assert "Returns" not in docstring
    assert "KeyError\n            When" in docstring
    ast.parse(insert(SOURCE, found, "numpy"))


def test_generator_gets_yields() -> None:
    fields = [f.key for f in doc_fields(definition("names"))]
    assert fields == ["summary", "yields"]


def test_body_on_the_header_line_moves_below_the_docstring() -> None:
    found = definition("one_liner")
    new_text = insert(SOURCE, found, "google")
    function = ast.parse(new_text).body[-1]
    assert isinstance(function, ast.FunctionDef)
    assert ast.get_docstring(function) is not None
    assert ast.unparse(function.body[1]) == "return x * 2"


def test_model_descriptions_are_used_when_they_read_as_prose() -> None:
    found = definition("percent")
    docstring = render_docstring(
        found, "rest", {"param:part": "How much of the whole.", "summary": "Share."}
    )
    assert ":param part: How much of the whole." in docstring
    assert ":type part: float" in docstring
    assert docstring.strip().startswith('"""Share.')


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        (" the number of items to keep\nmore", "The number of items to keep."),
        ("- Returns the sum.", "Returns the sum."),
        ("x = compute(a)", None),
        ('"""', None),
        ("ab", None),
        ("Jext in\x01ter", None),
        ("Val\ufffd\ufffdinit ok", None),
        ("def f(x):", None),
        ("", None),
    ],
)
def test_clean_description(raw: str, cleaned: str | None) -> None:
    assert clean_description(raw) == cleaned


def test_each_hole_sits_where_its_description_goes() -> None:
    found = definition("percent")
    holes = description_holes(SOURCE, found, "google")
    assert [h.field.key for h in holes][:3] == ["summary", "param:part", "param:whole"]
    part = holes[1]
    assert part.prefix.endswith("part (float): ")
    ast.parse(part.prefix + "How much." + part.suffix)
    assert part.suffix.startswith("\n        whole (float): The whole.")
