"""Fitting prompts into the token budget, and the token ids the model receives."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from prompts.budget import CompletionPrompt, TokenizerLike, build_completion_prompt
from prompts.context import Document
from prompts.fim import TEMPLATES, FimTemplate, select_template
from tests.unit.test_prompts_fim import DEFAULT_MODEL_TOKENS as QWEN_SPECIALS

FIXTURE_MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


class FakeTokenizer:
    """Words, runs of blanks and single other characters are tokens, ids given on first sight.

    Like the real one, it never turns special-token text found in a document into a special id.
    """

    def __init__(self, specials: Sequence[str] = QWEN_SPECIALS) -> None:
        self.special_tokens = {token: index for index, token in enumerate(specials)}
        self._ids: dict[str, int] = {}
        self._pieces: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in re.findall(r"\w+|[ \t]+|\n|.", text):
            if piece not in self._ids:
                self._ids[piece] = 1000 + len(self._ids)
                self._pieces[self._ids[piece]] = piece
            ids.append(self._ids[piece])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._pieces.get(i, "") for i in ids)

    def token_id(self, name: str) -> int | None:
        return self.special_tokens.get(name)


def real_tokenizer(model: str) -> TokenizerLike | None:
    """The fixture model's tokenizer through the project's wrapper, when both are there."""
    path = FIXTURE_MODELS / model
    if not (path / "tokenizer.json").exists():
        return None
    try:
        from inference.tokenizer import Tokenizer
    except ImportError:
        return None
    return Tokenizer.from_model_dir(path)


def tokenizers() -> tuple[object, ...]:
    real = real_tokenizer("qwen2-fp32")
    return (
        pytest.param(FakeTokenizer(), id="fake"),
        pytest.param(
            real,
            id="qwen2-fixture",
            marks=pytest.mark.skipif(real is None, reason="no fixture model"),
        ),
    )


def make_module(functions: int) -> str:
    header = "import math\nfrom decimal import Decimal\n\n\n"
    body = "".join(
        f"def price_{i}(quantity: int, unit: Decimal) -> Decimal:\n"
        f"    total = quantity * unit * {i}\n"
        f"    return round(total, 2)\n\n\n"
        for i in range(functions)
    )
    return header + body


def document(text: str, path: str = "shop/pricing.py", uri: str | None = None) -> Document:
    return Document(uri=uri or f"file:///ws/{path}", path=path, language_id="python", text=text)


def build(
    text: str,
    offset: int,
    tokenizer: TokenizerLike,
    budget: int = 1024,
    open_documents: Sequence[Document] = (),
    template: FimTemplate = TEMPLATES["qwen2.5-coder"],
    repo_level: bool = False,
    healing: bool = False,  # these tests are about the budget; healing has its own tests
) -> CompletionPrompt:
    return build_completion_prompt(
        document(text),
        offset,
        list(open_documents),
        tokenizer,
        template,
        budget,
        repo_level=repo_level,
        healing=healing,
    )


QWEN = TEMPLATES["qwen2.5-coder"]


def ids_of(tokenizer: TokenizerLike, *tokens: str) -> list[int]:
    found = [tokenizer.token_id(t) for t in tokens]
    assert None not in found
    return [i for i in found if i is not None]


@pytest.mark.parametrize("tokenizer", tokenizers())
def test_small_file_goes_in_whole_in_fim_order(tokenizer: TokenizerLike) -> None:
    text = "def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"
    cursor = text.index(", 2))")
    prompt = build(text, cursor, tokenizer)
    pre, suf, mid = ids_of(tokenizer, "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert prompt.prefix == text[:cursor] and prompt.suffix == text[cursor:]
    assert prompt.token_ids[0] == pre and prompt.token_ids[-1] == mid
    assert prompt.token_ids.count(suf) == 1
    # What the model reads, special tokens aside: header, code before, code after.
    assert tokenizer.decode(prompt.token_ids) == prompt.header + text
    assert prompt.header.startswith("# Path: shop/pricing.py\n")
    written = f"{prompt.header}{text[:cursor]}<|fim_suffix|>{text[cursor:]}<|fim_middle|>"
    assert prompt.text == "<|fim_prefix|>" + written


@pytest.mark.parametrize("tokenizer", tokenizers())
@pytest.mark.parametrize("budget", [16, 64, 200, 1024])
@pytest.mark.parametrize("repo_level", [False, True])
def test_prompt_never_exceeds_the_budget(
    tokenizer: TokenizerLike, budget: int, repo_level: bool
) -> None:
    text = make_module(200)
    cursor = text.index("def price_120") + len("def price_120")
    others = [document(make_module(30), f"shop/other_{i}.py") for i in range(4)]
    prompt = build(text, cursor, tokenizer, budget, others, repo_level=repo_level)
    assert len(prompt.token_ids) <= budget


@pytest.mark.parametrize("tokenizer", tokenizers())
def test_long_file_keeps_the_code_nearest_the_cursor_in_whole_lines(
    tokenizer: TokenizerLike,
) -> None:
    text = make_module(200)
    cursor = text.index("    total = quantity * unit * 120") + len("    total = ")
    prompt = build(text, cursor, tokenizer, budget=300)
    before = text[:cursor].rstrip(" ")  # typed spaces are left to the model (token healing)
    assert before.endswith(prompt.prefix) and text[cursor:].startswith(prompt.suffix)
    assert prompt.prefix.endswith("    total =")  # the cursor's own line is always there
    assert before[-len(prompt.prefix) - 1] == "\n"  # cut at a line start
    assert prompt.suffix.endswith("\n")  # cut at a line end
    assert len(prompt.prefix) > len(prompt.suffix)  # the code before the cursor comes first


@pytest.mark.parametrize("tokenizer", tokenizers())
def test_room_the_suffix_does_not_use_goes_to_the_prefix(tokenizer: TokenizerLike) -> None:
    text = make_module(200)
    cursor = len(text)  # end of file: no suffix at all
    prompt = build(text, cursor, tokenizer, budget=400)
    assert prompt.suffix == ""
    prefix_tokens = len(tokenizer.encode(prompt.prefix))
    assert prefix_tokens > 0.8 * 400  # well beyond the prefix's first share of 60%


@pytest.mark.parametrize("tokenizer", tokenizers())
def test_imports_cut_off_with_the_start_of_the_file_come_back(tokenizer: TokenizerLike) -> None:
    text = make_module(200)
    cursor = text.index("def price_150")
    prompt = build(text, cursor, tokenizer, budget=300)
    assert "import math" not in prompt.prefix
    assert prompt.imports == ("import math", "from decimal import Decimal")
    assert "import math\nfrom decimal import Decimal\n\n" in prompt.text
    assert prompt.text.index("import math") < prompt.text.index(prompt.prefix)


def test_imports_are_not_repeated_when_the_prefix_has_them() -> None:
    text = make_module(3)
    prompt = build(text, len(text), FakeTokenizer())
    assert prompt.imports == ()
    assert prompt.text.count("import math") == 1


def test_similar_open_file_is_quoted_as_a_commented_snippet() -> None:
    text = make_module(2) + "def invoice_total(lines):\n    "
    other = document(
        "def line_total(quantity, unit):\n    return quantity * unit\n", "shop/lines.py"
    )
    prompt = build(text, len(text), FakeTokenizer(), open_documents=[other])
    assert len(prompt.snippets) == 1
    assert prompt.snippets[0].startswith("# Compare this snippet from shop/lines.py:\n")
    assert "#     return quantity * unit\n" in prompt.snippets[0]
    # Snippets sit between the header and the code.
    assert prompt.header + prompt.snippets[0] in prompt.text


def test_snippets_are_the_first_thing_dropped_when_room_is_short() -> None:
    text = make_module(200)
    cursor = text.index("def price_120")
    others = [document(make_module(20), f"shop/other_{i}.py") for i in range(3)]
    roomy = build(text, cursor, FakeTokenizer(), budget=2000, open_documents=others)
    tight = build(text, cursor, FakeTokenizer(), budget=120, open_documents=others)
    assert roomy.snippets and not tight.snippets
    assert tight.prefix.strip()


def test_special_token_text_in_the_document_stays_text() -> None:
    tokenizer = FakeTokenizer()
    text = 'TEMPLATE = "<|fim_prefix|>{prefix}<|fim_suffix|>"\n\n\ndef render():\n    '
    prompt = build(text + "pass\n", len(text), tokenizer)
    pre, suf = ids_of(tokenizer, "<|fim_prefix|>", "<|fim_suffix|>")
    assert prompt.token_ids.count(pre) == 1 and prompt.token_ids.count(suf) == 1


def test_special_token_text_stays_text_with_the_real_tokenizer() -> None:
    tokenizer = real_tokenizer("qwen2-fp32")
    if tokenizer is None:
        pytest.skip("no fixture model")
    text = 'TEMPLATE = "<|fim_prefix|>{prefix}<|endoftext|>"\n'
    prompt = build(text + "print(TEMPLATE)\n", len(text), tokenizer)
    pre, eot = ids_of(tokenizer, "<|fim_prefix|>", "<|endoftext|>")
    assert prompt.token_ids.count(pre) == 1
    assert eot not in prompt.token_ids


def test_multiline_after_a_def_line_with_top_level_stops() -> None:
    text = "import math\n\n\ndef area(r):\n"
    prompt = build(text, len(text) - 1, FakeTokenizer())
    assert prompt.multiline
    assert "\ndef " in prompt.stop_strings and "\n" not in prompt.stop_strings


def test_single_line_mid_line_stops_at_the_newline() -> None:
    text = "total = compute(price, )\n"
    prompt = build(text, text.index(")"), FakeTokenizer())
    assert not prompt.multiline
    assert prompt.stop_strings[0] == "\n"
    assert "\ndef " not in prompt.stop_strings


def test_stop_token_ids_are_the_templates_stops_the_tokenizer_has() -> None:
    tokenizer = FakeTokenizer()
    prompt = build("x = 1\n", 5, tokenizer)
    expected = ids_of(tokenizer, "<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>")
    assert set(expected) <= prompt.stop_token_ids
    # <|im_end|> is not in this vocabulary: it can only be caught as text.
    assert "<|im_end|>" in prompt.stop_strings


def test_repository_level_prompt_in_qwen_layout() -> None:
    tokenizer = FakeTokenizer()
    text = "def invoice_total(quantity, unit):\n    \nTAX = 0.2\n"
    other = document(
        "def line_total(quantity, unit):\n    return quantity * unit\n", "shop/lines.py"
    )
    cursor = text.index("\nTAX")
    prompt = build(text, cursor, tokenizer, open_documents=[other], repo_level=True)
    assert prompt.text == (
        "<|file_sep|>shop/lines.py\ndef line_total(quantity, unit):\n    return quantity * unit\n"
        "<|file_sep|>shop/pricing.py\n<|fim_prefix|>def invoice_total(quantity, unit):\n   "
        "<|fim_suffix|>\nTAX = 0.2\n<|fim_middle|>"
    )
    file_sep, pre = ids_of(tokenizer, "<|file_sep|>", "<|fim_prefix|>")
    assert prompt.token_ids[0] == file_sep and prompt.token_ids.count(file_sep) == 2
    assert prompt.token_ids.count(pre) == 1


def test_repository_level_prompt_at_the_end_of_a_file_is_the_files_text_after_its_path() -> None:
    tokenizer = FakeTokenizer()
    text = "def invoice_total(quantity, unit):\n    return "
    prompt = build(text, len(text), tokenizer, repo_level=True)
    # The format's left-to-right rows: no FIM token, the code right after the path.
    assert prompt.text == (
        "<|file_sep|>shop/pricing.py\ndef invoice_total(quantity, unit):\n    return"
    )


def test_repository_level_prompt_in_starcoder2_layout_puts_the_path_after_fim_prefix() -> None:
    specials = ("<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<file_sep>")
    tokenizer = FakeTokenizer(specials)
    template = select_template(specials)
    text = "def invoice_total(lines):\n    \nTAX = 0.2\n"
    prompt = build(text, text.index("\nTAX"), tokenizer, template=template, repo_level=True)
    assert prompt.text.startswith("<file_sep><fim_prefix>shop/pricing.py\ndef invoice_total")


@pytest.mark.parametrize(
    ("specials", "start"),
    [
        (("<s>", "</s>", "<PRE>", "<SUF>", "<MID>", "<EOT>"), "<s><PRE># Path"),
        (
            (
                "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
                "<\uff5cend\u2581of\u2581sentence\uff5c>",
                "<\uff5cfim\u2581hole\uff5c>",
                "<\uff5cfim\u2581begin\uff5c>",
                "<\uff5cfim\u2581end\uff5c>",
            ),
            "<\uff5cbegin\u2581of\u2581sentence\uff5c><\uff5cfim\u2581begin\uff5c># Path",
        ),
        (
            (
                "<bos>",
                "<eos>",
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
                "<|file_separator|>",
            ),
            "<bos><|fim_prefix|># Path",
        ),
    ],
)
def test_families_that_need_a_start_token_get_it_first(
    specials: tuple[str, ...], start: str
) -> None:
    tokenizer = FakeTokenizer(specials)
    prompt = build("x = 1\ny = 2\n", 5, tokenizer, template=select_template(specials))
    assert prompt.text.startswith(start)
    assert len(prompt.token_ids) == len(
        tokenizer.encode("".join(_texts(prompt, specials)))
    ) + _count_specials(prompt, specials)


def _texts(prompt: CompletionPrompt, specials: Sequence[str]) -> list[str]:
    return [piece for piece in re.split("|".join(map(re.escape, specials)), prompt.text) if piece]


def _count_specials(prompt: CompletionPrompt, specials: Sequence[str]) -> int:
    return sum(prompt.text.count(s) for s in specials)


def test_template_the_tokenizer_cannot_serve_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="<fim_prefix>"):
        build("x = 1\n", 5, FakeTokenizer(), template=TEMPLATES["starcoder"])


def test_cursor_outside_the_document_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        build("x = 1\n", 99, FakeTokenizer())


def test_the_last_space_typed_is_left_to_the_model() -> None:
    # BPE splits "        if" into seven spaces and " if": the prompt ends at that boundary.
    text = "def fibonacci(n):\n    return "
    prompt = build(text, len(text), FakeTokenizer())
    assert prompt.prefix.endswith("    return")
    blank = "class Stack:\n    def push(self, item):\n        "
    assert build(blank, len(blank), FakeTokenizer()).prefix.endswith("item):\n       ")
    tabs = "class Stack:\n\tdef push(self, item):\n\t\t"
    assert build(tabs, len(tabs), FakeTokenizer()).prefix.endswith("item):\n\t\t")


def test_nothing_after_the_cursor_gives_a_plain_prompt_without_fim_tokens() -> None:
    tokenizer = FakeTokenizer()
    text = "items = []\nfor item in data:\n    items."
    prompt = build(text + "\n\n", len(text), tokenizer)
    fim = ids_of(tokenizer, "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert not set(fim) & set(prompt.token_ids)
    assert prompt.text == prompt.header + text


def test_a_healed_prompt_ends_before_the_partial_word_and_carries_it() -> None:
    tokenizer = real_tokenizer("qwen2-fp32")
    if tokenizer is None:
        pytest.skip("the fixture model's tokenizer is not there")
    text = "class Stack:\n    def push(self, item):\n        se"
    suffix = "\n\n    def pop(self):\n        return 1\n"
    prompt = build(text + suffix, len(text), tokenizer, healing=True)
    assert prompt.healed == " se"
    assert prompt.prefix == text[: -len(" se")]
    assert prompt.text.count("item):\n       <|fim_suffix|>") == 1
    unhealed = build(text + suffix, len(text), tokenizer)
    assert unhealed.healed is None and unhealed.prefix == text
