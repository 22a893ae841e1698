"""Post-processing: each rule on its own, then the whole pipeline as the editor would see it."""

from __future__ import annotations

from prompts.postprocess import (
    PostprocessContext,
    balance_brackets,
    cut_at_stop_strings,
    cut_at_suffix_repeat,
    cut_at_syntax_break,
    drop_healed_text,
    drop_if_empty,
    drop_indentation_mid_line,
    drop_repetition,
    drop_typed_whitespace,
    indent_after_opener,
    indent_unit,
    keep_first_line,
    postprocess,
    postprocess_with_reason,
    stop_at_block_end,
    strip_trailing_whitespace,
    trim_line_suffix_overlap,
)


def complete(
    raw: str,
    prefix: str,
    suffix: str = "\n",
    *,
    multiline: bool,
    language: str = "python",
    stops: tuple[str, ...] = (),
) -> str:
    return postprocess(raw, PostprocessContext(prefix, suffix, multiline, language, stops))


# --- stop strings ---


def test_cut_at_the_first_stop_string() -> None:
    raw = "return a + b<|endoftext|>def junk():"
    assert cut_at_stop_strings(raw, ["<|file_sep|>", "<|endoftext|>"]) == "return a + b"
    assert cut_at_stop_strings("x = 1", ["<|endoftext|>"]) == "x = 1"


def test_pipeline_cuts_at_any_fim_token_even_if_not_asked() -> None:
    raw = "user.name<fim_middle>user.email"
    assert complete(raw, "print(", ")\n", multiline=False) == "user.name"


def test_pipeline_cuts_at_the_prompts_own_stop_strings() -> None:
    raw = "    return n * factorial(n - 1)\n\ndef fibonacci(n):\n    pass"
    out = complete(raw, "def factorial(n):\n", multiline=True, stops=("\ndef ",))
    assert out == "    return n * factorial(n - 1)"


# --- single line ---


def test_single_line_mode_keeps_one_line() -> None:
    assert keep_first_line("total += price\n    count += 1\n") == "total += price"
    assert complete("total += price\ncount += 1", "    ", "\n", multiline=False) == "total += price"


def test_single_line_completion_that_starts_a_new_line_shows_nothing() -> None:
    assert complete("\nimport sys", "import os", "\n", multiline=False) == ""


# --- repetition loops ---


def test_a_line_repeated_three_times_keeps_one_copy() -> None:
    raw = "    self.items.append(item)\n" * 5 + "    self.items.app"
    assert drop_repetition(raw) == "    self.items.append(item)"


def test_a_repeated_block_of_lines_keeps_one_copy() -> None:
    block = "x = read()\nif x:\n    handle(x)\n"
    assert drop_repetition("setup()\n" + block * 3) == "setup()\n" + block.rstrip("\n")


def test_a_phrase_looping_inside_a_line_drops_that_line() -> None:
    raw = "values = [0]\nresult = foo(a, a, a, a, a, a, a, a, a, a, a, a"
    assert drop_repetition(raw) == "values = [0]"


def test_repeated_closing_lines_and_banners_are_not_loops() -> None:
    closing = "      }\n    }\n  }\n}\n}\n}"
    assert drop_repetition(closing) == closing
    banner = "# " + "=" * 70
    assert drop_repetition(banner) == banner
    legit = "a = 1\nb = 2\na = 1\n"
    assert drop_repetition(legit) == legit


# --- end of the cursor's block ---


def test_stop_where_the_body_of_the_def_ends() -> None:
    raw = "\n    return math.pi * r ** 2\n\ndef perimeter(r):\n    return 2 * math.pi * r"
    assert stop_at_block_end(raw, "def area(r):", "\n") == "\n    return math.pi * r ** 2\n"


def test_stop_at_a_dedent_below_the_cursor_line_but_keep_nested_blocks() -> None:
    prefix = "def load(paths):\n    "
    raw = "data = []\n    for p in paths:\n        data.append(read(p))\n    return data\nload([])"
    assert stop_at_block_end(raw, prefix, "\n") == (
        "data = []\n    for p in paths:\n        data.append(read(p))\n    return data"
    )


def test_else_at_the_parent_level_ends_an_if_body() -> None:
    prefix = "    if cached:"
    raw = "\n        return cached\n    else:\n        return compute()"
    assert stop_at_block_end(raw, prefix, "\n") == "\n        return cached"


def test_javascript_closing_brace_is_kept_once_when_the_suffix_lacks_it() -> None:
    raw = "\n  return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}"
    assert stop_at_block_end(raw, "function add(a, b) {", "") == "\n  return a + b;\n}"
    # The editor already shows the closing brace below the cursor: do not write it again.
    assert stop_at_block_end(raw, "function add(a, b) {", "\n}\n") == "\n  return a + b;"


# --- repeating what follows ---


def test_cut_where_the_completion_rewrites_the_next_line() -> None:
    prefix = "def mean(xs):\n    "
    suffix = "\n    return total / len(xs)\n"
    raw = "total = sum(xs)\n    return total / len(xs)\n"
    assert cut_at_suffix_repeat(raw, prefix, suffix) == "total = sum(xs)"


def test_a_completion_equal_to_the_next_line_becomes_nothing() -> None:
    suffix = "\n    return total\n"
    assert complete("return total", "    total = 0\n    ", suffix, multiline=False) == ""


def test_a_similar_but_different_line_is_kept() -> None:
    suffix = "\n    return total\n"
    raw = "total = sum(xs)\n    return total / len(xs)"
    assert cut_at_suffix_repeat(raw, "    ", suffix) == raw


# --- brackets ---


def test_closer_supplied_by_the_suffix_is_not_written_twice() -> None:
    assert balance_brackets("user.id)", "print(", ")\n", "python") == "user.id"


def test_brackets_the_completion_opens_and_closes_stay() -> None:
    assert balance_brackets("len(items)", "print(", ")\n", "python") == "len(items)"
    assert complete("len(items)", "print(", ")\n", multiline=False) == "len(items)"


def test_brackets_the_completion_leaves_open_are_closed() -> None:
    assert balance_brackets("max(a, b", "total = ", "\n", "python") == "max(a, b)"
    assert balance_brackets("{'id': user.id, 'tags': [t", "payload = ", "\n", "python") == (
        "{'id': user.id, 'tags': [t]}"
    )


def test_no_closer_is_added_when_the_suffix_has_one_beyond_the_lines_needs() -> None:
    # The cursor sits in `[]`: the suffix's `]` is free for the completion's own `[`.
    assert balance_brackets("items[0", "first = ", "]\n", "python") == "items[0"
    # `print(` needs the suffix's `)`, so the completion's `len(` gets its own.
    assert balance_brackets("len(items", "print(", ")\n", "python") == "len(items)"


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    assert balance_brackets('log(":-( failed")', "", "\n", "python") == 'log(":-( failed")'
    assert balance_brackets("x = 1  # (see above", "", "\n", "python") == "x = 1  # (see above"


def test_a_closer_that_does_not_match_ends_the_completion() -> None:
    assert balance_brackets("compute(a, b]", "x = ", "\n", "python") == "compute(a, b"


def test_javascript_arrow_callback_gets_its_paren_closed_once() -> None:
    prefix = "const names = users.map("
    suffix = ");\n"
    assert complete("u => u.name);", prefix, suffix, multiline=False, language="javascript") == (
        "u => u.name"
    )
    assert (
        complete("u => format(u.name", prefix, suffix, multiline=False, language="javascript")
        == "u => format(u.name)"
    )


# --- the rest of the line ---


def test_rest_of_line_repeated_at_the_end_is_trimmed() -> None:
    assert trim_line_suffix_overlap("n > 0:", ":\n", "python") == "n > 0"
    assert trim_line_suffix_overlap('Hello")', '")\n', "python") == "Hello"


def test_rest_of_line_overlap_that_closes_the_completions_own_call_stays() -> None:
    assert trim_line_suffix_overlap("str(n)", ")\n", "python") == "str(n)"


# --- whitespace and empty answers ---


def test_trailing_whitespace_and_blank_lines_are_stripped() -> None:
    assert strip_trailing_whitespace("\n    return x   \n\n\n", "\n") == "\n    return x"


def test_trailing_space_before_the_rest_of_the_line_is_kept() -> None:
    # `print(|name)`: the space separates the completion from `name`.
    assert strip_trailing_whitespace("'Hello', ", "name)\n") == "'Hello', "


def test_empty_or_blank_answers_become_nothing() -> None:
    assert drop_if_empty("   \n\t") == ""
    assert complete("<|endoftext|>", "x = ", multiline=False) == ""
    assert complete("\n\n", "def f():", multiline=True) == ""


# --- the whole pipeline on realistic cases ---


def test_pipeline_multiline_function_body() -> None:
    prefix = "import math\n\n\ndef area(radius: float) -> float:\n    "
    suffix = "\n\n\ndef main():\n    print(area(2))\n"
    raw = (
        '"""Area of a circle."""\n    return math.pi * radius ** 2\n\n\n'
        "def main():\n    print(area(2))\n"
    )
    assert complete(raw, prefix, suffix, multiline=True) == (
        '"""Area of a circle."""\n    return math.pi * radius ** 2'
    )


def test_pipeline_single_line_in_the_middle_of_a_call() -> None:
    prefix = "    logger.info("
    suffix = ")\n    return result\n"
    raw = '"saved %s", path)\n    return result\n'
    assert complete(raw, prefix, suffix, multiline=False) == '"saved %s", path'


def test_pipeline_drops_a_looping_answer_down_to_one_copy() -> None:
    prefix = "class Stack:\n    def __init__(self):\n        "
    raw = (
        "self.items = []\n        self.items = []\n        self.items = []\n        self.items = []"
    )
    assert complete(raw, prefix, "\n", multiline=True) == "self.items = []"


def test_rust_lifetimes_are_not_quotes() -> None:
    prefix = "fn longest"
    raw = "<'a>(x: &'a str, y: &'a str"
    assert balance_brackets(raw, prefix, "\n", "rust") == "<'a>(x: &'a str, y: &'a str)"


# --- spaces the user typed before the cursor ---


def test_the_space_the_model_writes_again_after_a_typed_one_is_dropped() -> None:
    assert drop_typed_whitespace(" fibonacci(n - 1)", "    return ") == "fibonacci(n - 1)"
    assert drop_typed_whitespace("fibonacci(n - 1)", "    return ") == "fibonacci(n - 1)"
    assert drop_typed_whitespace(" x", "    return") == " x"  # nothing typed: keep its space


def test_indentation_typed_on_a_blank_line_is_not_doubled() -> None:
    prefix = "class Stack:\n    def push(self, item):\n        "
    raw = "        self.items.append(item)\n        return item"
    assert (
        complete(raw, prefix, "", multiline=True) == "self.items.append(item)\n        return item"
    )


def test_indentation_after_code_on_the_cursor_line_is_a_misplaced_line() -> None:
    junk = "        self.assertEqual(self.name, 'foo')"
    assert drop_indentation_mid_line(junk, "        return str(") == ""
    assert drop_indentation_mid_line("\tx = 1", "    y = f(\t") == "\tx = 1"  # typed blank
    assert drop_indentation_mid_line(" + 1", "    total = n") == " + 1"  # one space separates
    assert drop_indentation_mid_line(junk, "") == junk  # at a line start it is indentation
    assert drop_indentation_mid_line(junk, "class A:\n    ") == junk
    assert drop_indentation_mid_line("\n        pass", "    def f():") == "\n        pass"


# --- the rule that emptied an answer ---


def _ctx(prefix: str, suffix: str = "\n", multiline: bool = False) -> PostprocessContext:
    return PostprocessContext(prefix=prefix, suffix=suffix, multiline=multiline, language="python")


def test_the_first_rule_that_empties_an_answer_is_named() -> None:
    assert postprocess_with_reason("\n    pass", _ctx("x = ")) == ("", "keep_first_line")
    assert postprocess_with_reason("<|endoftext|>x", _ctx("x = ")) == ("", "cut_at_stop_strings")
    mid_line = postprocess_with_reason("        self.assertEqual(a, b)", _ctx("    x = str("))
    assert mid_line == ("", "drop_indentation_mid_line")


def test_an_answer_left_to_show_or_already_empty_has_no_reason() -> None:
    assert postprocess_with_reason("1\n", _ctx("x = ")) == ("1", None)
    assert postprocess_with_reason("", _ctx("x = ")) == ("", None)


def test_postprocess_shows_what_postprocess_with_reason_shows() -> None:
    for raw in ("1)\n", "foo(a, b", "   ", "\n    return 1", "self.name\n\n    def f(self):"):
        for multiline in (False, True):
            context = _ctx("    return ", multiline=multiline)
            assert postprocess(raw, context) == postprocess_with_reason(raw, context)[0]


# --- token healing: the answer rewrites the typed text first ---


def _healed(prefix: str, healed: str, suffix: str = "\n") -> PostprocessContext:
    return PostprocessContext(
        prefix=prefix, suffix=suffix, multiline=False, language="python", healed=healed
    )


def test_the_healed_text_is_dropped_from_the_start_of_the_answer() -> None:
    assert drop_healed_text(" self.items = []", " se") == "lf.items = []"
    assert drop_healed_text(".update(x)", ".up") == "date(x)"
    assert drop_healed_text(" se", " se") == ""  # the answer ended where the user is
    assert drop_healed_text("return", " ret") == ""  # not what was typed: it fits nowhere
    shown = postprocess_with_reason(" self.items = []\n", _healed("        se", " se"))
    assert shown == ("lf.items = []", None)
    assert postprocess_with_reason("foo", _healed("x = se", " se")) == ("", "drop_healed_text")
    # An answer that only rewrote the typed text said nothing: no rule dropped anything.
    assert postprocess_with_reason(" se", _healed("x = se", " se")) == ("", None)
    assert postprocess_with_reason(" ", _healed("x = se", " se")) == ("", None)
    # A healed blank is not forced: an answer may take it as typed.
    assert drop_healed_text("1", " ") == "1" and drop_healed_text(" 1", " ") == "1"


def test_a_suggestion_after_typed_blanks_is_cut_at_the_cursor_never_shifted() -> None:
    # The user typed `x =   ` (three spaces); the prompt ends at `x =  ` and the answer
    # rewrites the last space: what follows it is shown as is.
    assert postprocess(" 1\n", _healed("x =   ", " ")) == "1"
    assert postprocess(" foo(a)\n", _healed("    return ", " ")) == "foo(a)"
    assert postprocess("foo(a)\n", _healed("    return ", " ")) == "foo(a)"
    # A run of blanks after the typed ones starts a new line's indentation: it fits nowhere,
    # and shifting it by the typed blanks would show it in the wrong place.
    after_def = postprocess_with_reason("        self.assertEqual(a, b)", _healed("def ", " "))
    assert after_def == ("", "drop_indentation_mid_line")
    assert postprocess_with_reason("  x", _healed("y =  ", " ")) == (
        "",
        "drop_indentation_mid_line",
    )
    # Whole-line: the model writes its line from the line's start; the typed indentation is
    # cut from it as typed, whether it rewrote all of it, one blank of it, or none.
    for raw in ("    return a\n", " return a\n", "return a\n"):
        assert postprocess(raw, _healed("def f(a):\n    ", " ")) == "return a"
    assert postprocess("      x\n", _healed("def f(a):\n    ", " ")) == "  x"  # deeper: its own


def test_an_unhealed_prompt_keeps_the_rules_of_before() -> None:
    # healed=None: only a trailing space was left out, and the typed blanks are dropped.
    assert postprocess(" 1\n", _ctx("x = ")) == "1"
    assert postprocess("1\n", _ctx("x = ")) == "1"


def test_a_new_line_after_an_opener_goes_one_level_deeper() -> None:
    opener = "def f(n):\n    if n < 2:"
    assert indent_after_opener("\n    return False", opener, "python") == "\n        return False"
    # already deep enough: untouched
    assert indent_after_opener("\n        return False", opener, "python") == (
        "\n        return False"
    )
    # the block the model wrote moves as a whole
    assert indent_after_opener("\n    a = 1\n    b = 2", opener, "python") == (
        "\n        a = 1\n        b = 2"
    )


def test_on_a_blank_line_under_an_opener_the_typed_blanks_count() -> None:
    prefix = "def f(n):\n    if n < 2:\n    "
    assert indent_after_opener("return False", prefix, "python") == "    return False"
    assert indent_after_opener("    return False", prefix, "python") == "    return False"
    # no opener above: nothing moves
    assert indent_after_opener("x = 1", "def f(n):\n    y = 2\n    ", "python") == "x = 1"


def test_the_level_is_the_documents_own_unit() -> None:
    assert indent_unit("def f():\n  if x:\n    y()\n") == "  "
    assert indent_unit("int f() {\n\tif (x) {\n") == "\t"
    assert indent_unit("x = 1\n") == "    "
    prefix = "int f() {\n\tif (x) {"
    assert indent_after_opener("\n\treturn 1;", prefix, "c") == "\n\t\treturn 1;"


def test_postprocess_indents_a_new_line_after_an_opener() -> None:
    ctx = PostprocessContext(
        prefix="def f(n):\n    if n < 2:\n    ", suffix="\n", multiline=False, language="python"
    )
    assert postprocess("    return False", ctx) == "    return False"


def test_a_line_that_ends_with_its_opener_stays_open() -> None:
    # `def from_lines(` goes on over the next lines: closing it would break the code.
    assert balance_brackets("def from_lines(", "    ", "\n        cls,\n", "python") == (
        "def from_lines("
    )
    assert balance_brackets("x = {", "", "\n", "python") == "x = {"
    assert balance_brackets("print(x", "", "\n", "python") == "print(x)"


# --- syntax ---

REPR_PREFIX = (
    "class User:\n    def __init__(self, name):\n        self.name = name\n\n"
    "    def __repr__(self):\n        return "
)


def test_an_answer_that_breaks_a_line_that_parsed_keeps_its_longest_valid_start() -> None:
    assert cut_at_syntax_break("self.name = name", REPR_PREFIX, "\n", "python") == "self.name"
    assert cut_at_syntax_break("x + ", "def f(n):\n    return ", "\n", "python") == "x"
    assert cut_at_syntax_break("= 3 =", "const x ", ";\n", "javascript") == "= 3"
    context = PostprocessContext(REPR_PREFIX, "\n", False, "python")
    assert postprocess("self.name = name", context) == "self.name"


def test_an_answer_with_no_valid_start_is_dropped() -> None:
    trace = postprocess_with_reason("= = 3", PostprocessContext("x ", "\n", False, "python"))
    assert trace == ("", "cut_at_syntax_break")


def test_an_answer_that_keeps_the_line_valid_is_kept() -> None:
    assert cut_at_syntax_break("f'User({self.name})'", REPR_PREFIX, "\n", "python") == (
        "f'User({self.name})'"
    )
    assert cut_at_syntax_break("m os import path", "import sys\nfro", "\n", "python") == (
        "m os import path"
    )
    assert cut_at_syntax_break('"hi"', "print(", ")\n", "python") == '"hi"'


def test_a_block_the_answer_opens_is_judged_with_a_body() -> None:
    assert cut_at_syntax_break("if n < 2:", "def f(n):\n    ", "\n", "python") == "if n < 2:"


def test_a_statement_that_goes_on_over_the_next_lines_is_not_judged() -> None:
    assert cut_at_syntax_break("foo(a,", "def f(n):\n    return ", "\n", "python") == "foo(a,"
    assert cut_at_syntax_break('"""Return', "def f(n):\n    ", "\n", "python") == '"""Return'
    assert cut_at_syntax_break("a + \\", "def f(n):\n    return ", "\n", "python") == "a + \\"


def test_a_line_broken_before_the_answer_is_not_judged() -> None:
    assert cut_at_syntax_break("= 2", "def f(n):\n    x = = ", "\n", "python") == "= 2"
    assert cut_at_syntax_break("x = = 1", "x ", "\n", "unknown-language") == "x = = 1"


def test_at_the_start_of_a_line_of_code_the_answer_is_judged_as_a_line_above_it() -> None:
    prefix = "def f(n):\n"
    assert cut_at_syntax_break("    if n < 0:", prefix, "        n = -n\n", "python") == (
        "    if n < 0:"
    )
    assert cut_at_syntax_break("    n = = 1", prefix, "    return n\n", "python") == "    n"
