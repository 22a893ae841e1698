"""Prompt context: cursor split, header, imports and related snippets from open documents."""

from __future__ import annotations

import itertools

import pytest

from prompts.context import (
    Document,
    as_comment,
    completable_mid_line,
    display_path,
    header,
    identifiers,
    imports,
    jaccard,
    related_snippets,
    split_at_cursor,
)

ORDERS = """\
from decimal import Decimal

from shop.db import session


def order_total(order):
    subtotal = sum(line.price * line.quantity for line in order.lines)
    return subtotal - order.discount
"""

PRICING = '''\
"""Prices, discounts and taxes."""

TAX_RATE = Decimal("0.2")


def line_price(line):
    return line.price * line.quantity


def apply_discount(subtotal, discount):
    return max(subtotal - discount, Decimal(0))


def add_tax(amount):
    return amount * (1 + TAX_RATE)
'''

LOGGING_SETUP = """\
import logging


def configure(level):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
"""


def doc(path: str, text: str, language_id: str = "python") -> Document:
    return Document(uri=f"file:///ws/{path}", path=path, language_id=language_id, text=text)


def test_split_at_cursor_and_a_cursor_outside_the_text() -> None:
    assert split_at_cursor("abc", 1) == ("a", "bc")
    assert split_at_cursor("abc", 3) == ("abc", "")
    with pytest.raises(ValueError, match="outside"):
        split_at_cursor("abc", 4)


@pytest.mark.parametrize(
    ("language_id", "first_line"),
    [
        ("python", "# Path: shop/orders.py"),
        ("typescript", "// Path: shop/orders.py"),
        ("lua", "-- Path: shop/orders.py"),
        ("html", "<!-- Path: shop/orders.py -->"),
        ("some-new-language", "# Path: shop/orders.py"),
    ],
)
def test_header_names_path_and_language_in_the_languages_comment_syntax(
    language_id: str, first_line: str
) -> None:
    text = header(doc("shop/orders.py", "", language_id))
    assert text.splitlines()[0] == first_line
    assert language_id in text.splitlines()[1]
    assert text.endswith("\n")


def test_absolute_paths_are_shortened_for_the_model() -> None:
    assert display_path("/home/ada/work/shop/src/shop/orders.py") == "src/shop/orders.py"
    assert display_path("C:\\Users\\ada\\shop\\src\\orders.py") == "shop/src/orders.py"
    assert display_path("shop/orders.py") == "shop/orders.py"


def test_as_comment_keeps_indentation_and_blank_lines_stay_markers() -> None:
    assert as_comment("def f():\n    pass\n\n", "python") == "# def f():\n#     pass\n#\n"


def test_python_imports_include_parenthesized_and_continued_statements() -> None:
    text = (
        "import os\n"
        "from typing import (\n    Any,\n    Callable,\n)\n"
        "from shop.db import session, \\\n    engine\n"
        "\n"
        "def f():\n    import json  # local imports are not the file's\n"
    )
    assert imports(text, "python") == [
        "import os",
        "from typing import (\n    Any,\n    Callable,\n)",
        "from shop.db import session, \\\n    engine",
    ]


@pytest.mark.parametrize(
    ("language_id", "text", "expected"),
    [
        (
            "typescript",
            "import { useState } from 'react';\nconst fs = require('fs');\nlet x = 1;\n",
            ["import { useState } from 'react';", "const fs = require('fs');"],
        ),
        ("go", 'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n', ['import (\n\t"fmt"\n\t"os"\n)']),
        (
            "rust",
            "use std::io;\npub use crate::model::Item;\nfn main() {}\n",
            ["use std::io;", "pub use crate::model::Item;"],
        ),
        (
            "cpp",
            '#include <vector>\n#include "shop.h"\nint x;\n',
            ["#include <vector>", '#include "shop.h"'],
        ),
        ("java", "package shop;\nimport java.util.List;\n", ["import java.util.List;"]),
        ("markdown", "import this\n", []),
    ],
)
def test_imports_in_other_languages(language_id: str, text: str, expected: list[str]) -> None:
    assert imports(text, language_id) == expected


def test_identifiers_leave_out_keywords() -> None:
    assert identifiers("def total(self, order): return order.lines") == {"total", "order", "lines"}


def test_jaccard_similarity() -> None:
    assert jaccard(frozenset({"a", "b"}), frozenset({"b", "c"})) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_related_snippets_prefer_the_file_that_shares_identifiers() -> None:
    current = doc("shop/orders.py", ORDERS)
    cursor = ORDERS.index("return subtotal")
    snippets = related_snippets(
        current,
        cursor,
        [doc("shop/log.py", LOGGING_SETUP), doc("shop/pricing.py", PRICING)],
        window_lines=6,
    )
    assert snippets, "pricing.py shares price, quantity, line, subtotal, discount"
    assert snippets[0].path == "shop/pricing.py"
    assert "quantity" in snippets[0].text or "discount" in snippets[0].text
    assert all(s.path != "shop/log.py" for s in snippets)
    assert snippets == sorted(snippets, key=lambda s: -s.score)


def test_related_snippets_skip_the_current_document_and_other_languages() -> None:
    current = doc("shop/orders.py", ORDERS)
    same_uri = Document(current.uri, current.path, "python", PRICING)
    javascript = doc("web/pricing.js", PRICING.replace('"""', "//"), "javascript")
    cursor = ORDERS.index("return subtotal")
    assert related_snippets(current, cursor, [same_uri, javascript]) == []


def test_related_snippets_skip_code_already_in_the_prompt() -> None:
    current = doc("shop/orders.py", ORDERS)
    copy = doc("shop/orders_copy.py", ORDERS)
    cursor = ORDERS.index("return subtotal")
    assert related_snippets(current, cursor, [copy], exclude_text=ORDERS) == []
    assert related_snippets(current, cursor, [copy], exclude_text="")


def test_snippets_from_one_document_do_not_overlap() -> None:
    long_pricing = PRICING * 4
    current = doc("shop/orders.py", ORDERS)
    snippets = related_snippets(
        current, len(ORDERS), [doc("shop/pricing.py", long_pricing)], window_lines=6
    )
    starts = sorted(s.start_line for s in snippets)
    assert all(b - a >= 6 for a, b in itertools.pairwise(starts))
    assert all(s.text.endswith("\n") for s in snippets)


def test_no_snippets_when_nothing_identifies_the_cursor_window() -> None:
    current = doc("shop/empty.py", "\n\n")
    assert related_snippets(current, 1, [doc("shop/pricing.py", PRICING)]) == []


@pytest.mark.parametrize(
    "suffix",
    ["", "\nnext_line()", "   \n", ")", '")', "])\n", "):", ") {", "];", "),\n", "'", "}\r\n"],
)
def test_a_suggestion_fits_before_closers_and_a_final_mark(suffix: str) -> None:
    assert completable_mid_line(suffix)


@pytest.mark.parametrize(
    "suffix", ["self.name", " + 1)", "x)", ", b)", "): pass", ") or y", "# note"]
)
def test_no_suggestion_while_typing_in_front_of_code(suffix: str) -> None:
    assert not completable_mid_line(suffix)
