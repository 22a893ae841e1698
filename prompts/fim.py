"""Fill-in-the-middle templates per model family, and choosing one from a tokenizer's tokens.

Token strings are the ones in each family's published tokenizer files: Qwen2.5-Coder
(`<|fim_prefix|>`...), StarCoder/StarCoder2 (`<fim_prefix>`...), DeepSeek-Coder (`fim begin`...,
spelled with full-width bars U+FF5C and U+2581 for the space), CodeLlama (SentencePiece pieces
`▁<PRE>`..., plain `<PRE>` in some conversions) and CodeGemma (`<|fim_prefix|>`... with
`<|file_separator|>`). Every template is prefix-suffix-middle (PSM): the model writes the middle
after the middle token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class FimTemplate:
    name: str  # "qwen2.5-coder" | "starcoder" | "deepseek-coder" | "codellama" | "codegemma"
    prefix_token: str
    suffix_token: str
    middle_token: str
    stop_tokens: tuple[str, ...]  # generation ends at any of these
    file_sep_token: str | None  # separates files in repository-level prompts, if the family has one
    bos_token: str | None = None  # families whose tokenizers start every sequence with it
    # StarCoder2 puts the file path after the prefix token; Qwen2.5-Coder puts it after the
    # file separator, before the prefix token.
    path_inside_prefix: bool = False

    def special_texts(self) -> tuple[str, ...]:
        """Every special-token string this template uses, stops included, without repeats."""
        texts = [self.prefix_token, self.suffix_token, self.middle_token, *self.stop_tokens]
        if self.file_sep_token:
            texts.append(self.file_sep_token)
        return tuple(dict.fromkeys(texts))


QWEN = FimTemplate(
    name="qwen2.5-coder",
    prefix_token="<|fim_prefix|>",
    suffix_token="<|fim_suffix|>",
    middle_token="<|fim_middle|>",
    stop_tokens=(
        "<|endoftext|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<|file_sep|>",
        "<|repo_name|>",
        "<|im_start|>",
        "<|im_end|>",
    ),
    file_sep_token="<|file_sep|>",
)

STARCODER = FimTemplate(
    name="starcoder",
    prefix_token="<fim_prefix>",
    suffix_token="<fim_suffix>",
    middle_token="<fim_middle>",
    stop_tokens=(
        "<|endoftext|>",
        "<file_sep>",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        "<fim_pad>",
        "<filename>",
    ),
    file_sep_token="<file_sep>",
    path_inside_prefix=True,
)


def _deepseek(name: str) -> str:
    # Full-width bars around the name, U+2581 where a space would be.
    return "<\uff5c" + name.replace(" ", "\u2581") + "\uff5c>"


DEEPSEEK = FimTemplate(
    name="deepseek-coder",
    prefix_token=_deepseek("fim begin"),
    suffix_token=_deepseek("fim hole"),
    middle_token=_deepseek("fim end"),
    stop_tokens=(
        _deepseek("end of sentence"),
        "<|EOT|>",
        _deepseek("fim begin"),
        _deepseek("fim hole"),
        _deepseek("fim end"),
    ),
    file_sep_token=None,
    bos_token=_deepseek("begin of sentence"),
)

# Meta's reference code and the Hugging Face tokenizer.json use the SentencePiece pieces with
# the word-start mark; some conversions (GGUF, Ollama) name them without it.
CODELLAMA = FimTemplate(
    name="codellama",
    prefix_token="▁<PRE>",
    suffix_token="▁<SUF>",
    middle_token="▁<MID>",
    stop_tokens=("▁<EOT>", "<EOT>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>"),
    file_sep_token=None,
    bos_token="<s>",
)
_CODELLAMA_PLAIN = dataclasses.replace(
    CODELLAMA,
    prefix_token="<PRE>",
    suffix_token="<SUF>",
    middle_token="<MID>",
    stop_tokens=("<EOT>", "▁<EOT>", "</s>", "<PRE>", "<SUF>", "<MID>"),
)

CODEGEMMA = FimTemplate(
    name="codegemma",
    prefix_token="<|fim_prefix|>",
    suffix_token="<|fim_suffix|>",
    middle_token="<|fim_middle|>",
    stop_tokens=(
        "<|file_separator|>",
        "<eos>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<end_of_turn>",
    ),
    file_sep_token="<|file_separator|>",
    bos_token="<bos>",
)

TEMPLATES: dict[str, FimTemplate] = {
    t.name: t for t in (QWEN, STARCODER, DEEPSEEK, CODELLAMA, CODEGEMMA)
}

_ALIASES: dict[str, str] = {
    "qwen": "qwen2.5-coder",
    "qwen2.5": "qwen2.5-coder",
    "qwen-coder": "qwen2.5-coder",
    "qwen2.5-coder": "qwen2.5-coder",
    "starcoder": "starcoder",
    "starcoder2": "starcoder",
    "deepseek": "deepseek-coder",
    "deepseek-coder": "deepseek-coder",
    "codellama": "codellama",
    "code-llama": "codellama",
    "codegemma": "codegemma",
}

# Tried in order: the first template whose marker tokens are all in the tokenizer wins.
# CodeGemma and Qwen share the FIM token names, so CodeGemma's file separator decides first.
_DETECTION: tuple[tuple[tuple[str, ...], FimTemplate], ...] = (
    ((_deepseek("fim begin"),), DEEPSEEK),
    (("<|fim_prefix|>", "<|file_separator|>"), CODEGEMMA),
    (("<|fim_prefix|>",), QWEN),
    (("<fim_prefix>",), STARCODER),
    (("▁<PRE>",), CODELLAMA),
    (("<PRE>",), _CODELLAMA_PLAIN),
)

ALL_SPECIAL_TEXTS: tuple[str, ...] = tuple(
    dict.fromkeys(text for _, t in _DETECTION for text in t.special_texts())
)


def template_names() -> tuple[str, ...]:
    return tuple(TEMPLATES)


def select_template(special_tokens: Collection[str], override: str | None = None) -> FimTemplate:
    """The FIM template for a tokenizer, from its special tokens or from a name given in settings.

    `override` accepts the template names and a few aliases ("qwen", "starcoder2", "deepseek").
    An override is checked against `special_tokens` when those are known, so that a wrong
    setting fails here with a message instead of producing a prompt the model cannot read.
    """
    tokens = set(special_tokens)
    if override:
        key = _ALIASES.get(override.strip().lower())
        if key is None:
            raise ValueError(
                f"unknown FIM template {override!r}; allowed: {', '.join(template_names())}"
            )
        template = TEMPLATES[key]
        if key == "codellama" and "▁<PRE>" not in tokens and "<PRE>" in tokens:
            template = _CODELLAMA_PLAIN
        missing = [
            t
            for t in (template.prefix_token, template.suffix_token, template.middle_token)
            if tokens and t not in tokens
        ]
        if missing:
            raise ValueError(
                f"FIM template {key!r} needs tokens the tokenizer lacks: {', '.join(missing)}"
            )
        return template
    for markers, template in _DETECTION:
        if all(m in tokens for m in markers):
            return template
    raise ValueError(
        "the tokenizer has no fill-in-the-middle tokens of a known family; "
        f"name a template in settings, one of: {', '.join(template_names())}"
    )
