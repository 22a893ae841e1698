"""FIM templates: each family is recognised from its tokenizer's tokens and stops on its own."""

from __future__ import annotations

import pytest

from prompts.fim import ALL_SPECIAL_TEXTS, TEMPLATES, select_template

# Added tokens as the families' tokenizer.json files list them (abridged to the FIM-relevant).
QWEN_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
# The embedded default model's tokenizer: Qwen2.5-Coder names, fewer of them.
DEFAULT_MODEL_TOKENS = [
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
]
STARCODER2_TOKENS = [
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<repo_name>",
    "<file_sep>",
    "<issue_start>",
]
DEEPSEEK_TOKENS = [
    "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<\uff5cfim\u2581hole\uff5c>",
    "<\uff5cfim\u2581begin\uff5c>",
    "<\uff5cfim\u2581end\uff5c>",
    "<|EOT|>",
]
CODELLAMA_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "\u2581<PRE>",
    "\u2581<MID>",
    "\u2581<SUF>",
    "\u2581<EOT>",
]
CODEGEMMA_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|file_separator|>",
]


@pytest.mark.parametrize(
    ("tokens", "name", "prefix", "stop"),
    [
        (QWEN_TOKENS, "qwen2.5-coder", "<|fim_prefix|>", "<|endoftext|>"),
        (DEFAULT_MODEL_TOKENS, "qwen2.5-coder", "<|fim_prefix|>", "<|file_sep|>"),
        (STARCODER2_TOKENS, "starcoder", "<fim_prefix>", "<file_sep>"),
        (
            DEEPSEEK_TOKENS,
            "deepseek-coder",
            "<\uff5cfim\u2581begin\uff5c>",
            "<\uff5cend\u2581of\u2581sentence\uff5c>",
        ),
        (CODELLAMA_TOKENS, "codellama", "\u2581<PRE>", "\u2581<EOT>"),
        (CODEGEMMA_TOKENS, "codegemma", "<|fim_prefix|>", "<|file_separator|>"),
    ],
)
def test_template_is_chosen_from_the_tokenizers_special_tokens(
    tokens: list[str], name: str, prefix: str, stop: str
) -> None:
    template = select_template(tokens)
    assert template.name == name
    assert template.prefix_token == prefix
    assert stop in template.stop_tokens
    # Every marker the prompt needs is a real token of that tokenizer.
    for token in (template.prefix_token, template.suffix_token, template.middle_token):
        assert token in tokens


def test_qwen_stops_on_end_of_text_padding_and_chat_tokens() -> None:
    stops = TEMPLATES["qwen2.5-coder"].stop_tokens
    for token in ("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|im_end|>", "<|repo_name|>"):
        assert token in stops


def test_deepseek_stops_on_end_of_sentence_and_eot() -> None:
    stops = TEMPLATES["deepseek-coder"].stop_tokens
    assert "<\uff5cend\u2581of\u2581sentence\uff5c>" in stops
    assert "<|EOT|>" in stops


def test_codellama_without_the_word_start_mark_uses_plain_names() -> None:
    # Some conversions (the test fixture among them) name the tokens <PRE>, <SUF>, <MID>.
    template = select_template(["<s>", "</s>", "<PRE>", "<SUF>", "<MID>", "<EOT>"])
    assert template.name == "codellama"
    assert (template.prefix_token, template.suffix_token, template.middle_token) == (
        "<PRE>",
        "<SUF>",
        "<MID>",
    )
    assert "<EOT>" in template.stop_tokens and "</s>" in template.stop_tokens


def test_codegemma_is_not_mistaken_for_qwen_although_fim_names_match() -> None:
    assert select_template(CODEGEMMA_TOKENS).name == "codegemma"
    assert select_template(QWEN_TOKENS).name == "qwen2.5-coder"


def test_starcoder_and_codegemma_have_file_separators_codellama_does_not() -> None:
    assert TEMPLATES["starcoder"].file_sep_token == "<file_sep>"
    assert TEMPLATES["codegemma"].file_sep_token == "<|file_separator|>"
    assert TEMPLATES["codellama"].file_sep_token is None


@pytest.mark.parametrize(
    ("setting", "name"),
    [("qwen", "qwen2.5-coder"), ("StarCoder2", "starcoder"), ("deepseek", "deepseek-coder")],
)
def test_settings_name_overrides_detection(setting: str, name: str) -> None:
    assert select_template([], override=setting).name == name


def test_override_wins_over_what_the_tokens_suggest() -> None:
    # CodeGemma's tokenizer has Qwen's FIM names: a user may force the Qwen layout.
    assert select_template(CODEGEMMA_TOKENS, override="qwen2.5-coder").name == "qwen2.5-coder"


def test_unknown_override_names_the_allowed_templates() -> None:
    with pytest.raises(ValueError) as error:
        select_template(QWEN_TOKENS, override="gpt-5")
    message = str(error.value)
    for name in ("qwen2.5-coder", "starcoder", "deepseek-coder", "codellama", "codegemma"):
        assert name in message


def test_override_the_tokenizer_cannot_serve_is_refused_with_the_missing_tokens() -> None:
    with pytest.raises(ValueError, match="<fim_prefix>"):
        select_template(QWEN_TOKENS, override="starcoder")


def test_tokenizer_without_fim_tokens_asks_for_a_setting() -> None:
    with pytest.raises(ValueError, match="codellama"):
        select_template(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])


def test_all_special_texts_cover_every_template() -> None:
    for template in TEMPLATES.values():
        for text in template.special_texts():
            assert text in ALL_SPECIAL_TEXTS
