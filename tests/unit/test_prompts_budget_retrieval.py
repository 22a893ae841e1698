"""Retrieved snippets in the prompt: both formats, their order, and the budget they fit in."""

from __future__ import annotations

from collections.abc import Sequence

from prompts.budget import MIN_SNIPPET_LINES, CompletionPrompt, build_completion_prompt
from prompts.context import Document, Snippet
from prompts.fim import TEMPLATES
from tests.unit.test_prompts_budget import FakeTokenizer, document, make_module

QWEN = TEMPLATES["qwen2.5-coder"]
LINES = Snippet(
    "shop/lines.py", "def line_total(quantity, unit):\n    return quantity * unit\n", 0.6, 4
)
TAXES = Snippet("shop/taxes.py", "def with_tax(total, rate):\n    return total * rate\n", 0.3, 0)


def build(
    text: str,
    retrieved: Sequence[Snippet] | None,
    open_documents: Sequence[Document] = (),
    budget: int = 1024,
    repo_level: bool = False,
) -> CompletionPrompt:
    return build_completion_prompt(
        document(text),
        len(text),
        list(open_documents),
        FakeTokenizer(),
        QWEN,
        budget,
        repo_level=repo_level,
        healing=False,
        retrieved=retrieved,
    )


def test_retrieved_snippets_are_quoted_as_comments_best_first() -> None:
    text = "def invoice_total(quantity, unit):\n    "
    prompt = build(text, [LINES, TAXES])
    assert prompt.snippets == (
        "# Compare this snippet from shop/lines.py:\n# def line_total(quantity, unit):\n"
        "#     return quantity * unit\n",
        "# Compare this snippet from shop/taxes.py:\n# def with_tax(total, rate):\n"
        "#     return total * rate\n",
    )
    assert prompt.header + "".join(prompt.snippets) + text.rstrip(" ") in prompt.text
    assert prompt.snippet_sources == ("shop/lines.py:5", "shop/taxes.py:1")


def test_retrieved_snippets_are_written_as_files_in_the_repository_format() -> None:
    text = "def invoice_total(quantity, unit):\n    "
    prompt = build(text, [LINES], repo_level=True)
    assert prompt.text == (
        "<|file_sep|>shop/lines.py\ndef line_total(quantity, unit):\n    return quantity * unit\n"
        "<|file_sep|>shop/pricing.py\ndef invoice_total(quantity, unit):\n   "
    )


def test_retrieved_snippets_take_the_place_of_the_open_documents_own() -> None:
    # The retrieval step scores the open documents itself, on the retrieval's scale: the
    # prompt takes its ranking as it is and does not add the open documents a second time.
    text = "def invoice_total(quantity, unit):\n    "
    opened = document("def line_total(quantity, unit):\n    return 0\n", "shop/opened.py")
    with_retrieval = build(text, [TAXES], open_documents=[opened])
    assert with_retrieval.snippet_sources == ("shop/taxes.py:1",)
    without = build(text, None, open_documents=[opened])
    assert without.snippet_sources == ("shop/opened.py:1",)


def test_a_retrieved_snippet_already_in_the_prompt_is_left_out() -> None:
    text = LINES.text + "\n\ndef invoice_total(quantity, unit):\n    "
    prompt = build(text, [LINES, TAXES])
    assert prompt.snippet_sources == ("shop/taxes.py:1",)


def test_a_snippet_too_long_for_the_room_left_keeps_its_first_lines() -> None:
    long_text = "".join(f"    total_{i} = quantity * unit * {i}\n" for i in range(12))
    long = Snippet("shop/long.py", long_text, 0.9, 0)
    text = make_module(60) + "def invoice_total(quantity, unit):\n    "
    prompt = build(text, [long], budget=800)
    assert len(prompt.snippets) == 1, "cut to fit, not dropped"
    kept = prompt.snippets[0].splitlines()[1:]
    assert MIN_SNIPPET_LINES <= len(kept) < 12
    assert kept == [f"#     total_{i} = quantity * unit * {i}" for i in range(len(kept))]
    assert len(prompt.token_ids) <= 800


def test_a_snippet_that_cannot_keep_enough_lines_is_dropped() -> None:
    long_text = "".join(f"    total_{i} = quantity * unit * {i}\n" for i in range(12))
    text = make_module(60) + "def invoice_total(quantity, unit):\n    "
    prompt = build(text, [Snippet("shop/long.py", long_text, 0.9, 0)], budget=120)
    assert prompt.snippets == ()
    assert prompt.prefix.strip()
