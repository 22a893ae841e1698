"""A completion that leaves a one-line string open at the end of the line ends before it."""

from __future__ import annotations

import pytest

from prompts.brackets import cut_open_string
from prompts.postprocess import PostprocessContext, postprocess_with_reason


def test_an_unterminated_f_string_after_an_open_call_is_dropped() -> None:
    trace = postprocess_with_reason(
        'f"Test {argv[1])', PostprocessContext("import sys\nprint(", "", False, "python")
    )
    assert trace == ("", "cut_open_string")


def test_what_comes_before_the_open_string_is_kept() -> None:
    assert cut_open_string('name, "Hello', "print(", "\n", "python") == "name,"
    assert cut_open_string("x + 'abc", "y = ", "\n", "javascript") == "x +"
    assert cut_open_string('label = rb"ab', "", "\n", "python") == "label ="


@pytest.mark.parametrize(
    ("text", "prefix", "suffix", "language"),
    [
        ('f"User({self.name})"', "    return ", "\n", "python"),  # closed
        ("world", 'print("hello ', "\n", "python"),  # the user opened it
        ('"hi', "print(", '")\n', "python"),  # the rest of the line closes it
        ('"""Return the user.', "def f():\n    ", "\n", "python"),  # a docstring
        ("'s name.", 'def f():\n    """Return the user', '\n    """\n', "python"),
        ("it's here", "# say ", "\n", "python"),  # a comment
        ('"done', "let s = ", "\n", "rust"),  # Rust strings may span lines
        ("`hello ${x}", "const s = ", "\n", "javascript"),  # a template
        ('R"(raw', "auto s = ", "\n", "cpp"),  # a raw string
        ('"a \\', "x = ", "\n", "python"),  # a continued line
        ('"a"\n    y = "b', "x = ", "\n", "python"),  # multi-line answers are not judged
        ('"open', "x = ", "\n", "markdown"),  # no grammar
    ],
)
def test_strings_that_may_go_on_are_left_alone(
    text: str, prefix: str, suffix: str, language: str
) -> None:
    assert cut_open_string(text, prefix, suffix, language) == text


def test_a_name_ending_in_a_prefix_letter_is_not_cut_into() -> None:
    assert cut_open_string('counter, "x', "f(", "\n", "python") == "counter,"
    assert cut_open_string('buf"x', "f(", "\n", "python") == "buf"
