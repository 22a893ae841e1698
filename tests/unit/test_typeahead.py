"""Typing-ahead: the rest of a shown suggestion while the user types it."""

from __future__ import annotations

from prompts.typeahead import ShownSuggestion, remaining_suggestion

SHOWN = ShownSuggestion(prefix="x = ", suffix="\nprint(x)\n", text="compute(1, 2)", id="a")


def test_typing_the_start_leaves_the_rest() -> None:
    assert remaining_suggestion(SHOWN, "x = comp", "\nprint(x)\n") == "ute(1, 2)"


def test_typing_something_else_ends_it() -> None:
    assert remaining_suggestion(SHOWN, "x = other", "\nprint(x)\n") is None


def test_an_edit_after_the_cursor_ends_it() -> None:
    assert remaining_suggestion(SHOWN, "x = comp", "\nprint(y)\n") is None


def test_typing_all_of_it_or_nothing_offers_nothing() -> None:
    assert remaining_suggestion(SHOWN, "x = compute(1, 2)", "\nprint(x)\n") is None
    assert remaining_suggestion(SHOWN, "x = ", "\nprint(x)\n") is None
    assert remaining_suggestion(SHOWN, "x =", "\nprint(x)\n") is None
