"""Token healing's back-off on the embedded model's own tokenizer: where the prompt stops for each
kind of text the cursor can follow, and that it stays within its bounds."""

from __future__ import annotations

import pytest

from inference.router import default_model_dir
from inference.tokenizer import Tokenizer
from prompts.healing import MAX_CHARS, MAX_TOKENS, back_off, space_then_word


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_model_dir(default_model_dir())


@pytest.mark.parametrize(
    ("prefix", "removed"),
    [
        pytest.param("class A:\n    def f(self):\n        se", " se", id="partial-identifier"),
        pytest.param("import os\nfro", "fro", id="partial-keyword"),
        pytest.param("def f():\n    retur", " retur", id="partial-keyword-indented"),
        pytest.param("x = self.fo", ".fo", id="partial-attribute"),
        pytest.param("items.", ".", id="after-dot"),
        pytest.param("foo(", "(", id="after-bracket"),
        pytest.param("foo(se", "(se", id="word-after-bracket"),
        pytest.param("def ", " ", id="after-one-space"),
        pytest.param("x =   ", " ", id="after-several-spaces"),
        pytest.param("        ", " ", id="indentation"),
        pytest.param('print("hel', '("hel', id="inside-string"),
        # ñ is two byte-level pieces in both tokenizers: the back-off stops after it.
        pytest.param('name = "señal', "al", id="after-a-non-ascii-character"),
        pytest.param("a ==", " ==", id="operator"),
        pytest.param("print(add(1", "1", id="number"),
    ],
)
def test_the_prompt_backs_off_to_the_whole_words_boundary(
    tokenizer: Tokenizer, prefix: str, removed: str
) -> None:
    healing = back_off(prefix, tokenizer)
    assert healing.removed == removed
    assert healing.prefix + healing.removed == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("if x:\n\t", id="after-a-tab"),  # a tab stands alone: already a boundary
        pytest.param("x = 1\n", id="after-a-newline"),
        pytest.param("", id="empty"),
        pytest.param('s = "crè', id="byte-pieces"),  # è is two byte tokens: nothing to force
    ],
)
def test_nothing_is_removed_where_the_prompt_already_ends_well_or_cannot_be_forced(
    tokenizer: Tokenizer, prefix: str
) -> None:
    healing = back_off(prefix, tokenizer)
    assert (healing.prefix, healing.removed) == (prefix, "")


def test_the_kept_part_encodes_to_the_same_tokens_as_in_the_whole_line(
    tokenizer: Tokenizer,
) -> None:
    for prefix in ("        se", "x = self.fo", 'print("hel', "    retur", "a ==", "foo(se"):
        healing = back_off(prefix, tokenizer)
        ids = tokenizer.encode(prefix)
        kept = tokenizer.encode(healing.prefix)
        assert ids[: len(kept)] == kept
        assert tokenizer.decode(ids[len(kept) :]) == healing.removed


def test_the_back_off_is_bounded_and_stays_on_the_cursors_line(tokenizer: Tokenizer) -> None:
    long_word = "x = " + "very_long_identifier_name_that_goes_on_and_on"
    healing = back_off(long_word, tokenizer)
    assert 0 < len(healing.removed) <= MAX_CHARS
    assert len(tokenizer.encode(healing.removed)) <= MAX_TOKENS
    assert healing.prefix + healing.removed == long_word
    for prefix in ("a\nb", "x = (\nfoo", "def f():\n    pass\nre"):
        assert "\n" not in back_off(prefix, tokenizer).removed


def test_a_space_left_out_mid_line_asks_for_a_word_after_it() -> None:
    assert space_then_word("    return", " ")
    assert not space_then_word("def f():\n    ", " ")  # a line of blanks: the model writes it all
    assert not space_then_word("import os\n", "fro")  # a word is forced instead
    assert not space_then_word("    return", None)  # healing off: nothing is constrained
