"""Parsing with tree-sitter: syntax errors, and what an edit changed."""

from __future__ import annotations

from tree_sitter import Parser

from prompts.parsing import changed_span, load_grammar, parse_tree, parses
from tests.unit.syntax_samples import INVENTORY


def test_parses_tells_broken_code_from_good_code() -> None:
    assert parses(INVENTORY.replace("    def total(self):\n        \n", ""), "python")
    assert not parses("def broken(:\n    return\n", "python")
    assert parses("fn main() { let x = 1; }", "rust")
    assert not parses("fn main() { let x = ; }", "rust")


def test_changed_span_is_what_an_edit_left_alone_on_each_side() -> None:
    assert changed_span("total = price * qty\n", "total = price * quantity\n") == (17, 3)
    assert changed_span("abc", "abc") == (3, 0)
    # The two sides never overlap, even where the text repeats around the edit.
    assert changed_span("aaaa", "aaaaaa") == (4, 0)
    long = "x = 1\n" * 5000
    assert changed_span(long, long[:12_000] + "y" + long[12_000:]) == (12_000, len(long) - 12_000)


def test_a_reparsed_edit_gives_the_tree_of_a_fresh_parse() -> None:
    before = INVENTORY.replace(
        "def total(self):\n        \n", "def total(self):\n        return 0\n"
    )
    after = before.replace("return 0", "return sum(self.items)")
    parse_tree("python", before)  # the tree the edit starts from
    edited = parse_tree("python", after)
    fresh = Parser(load_grammar("python")).parse(after.encode("utf-8"))
    assert str(edited.root_node) == str(fresh.root_node)
