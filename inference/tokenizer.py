"""`tokenizers` wrapper exposing the model's special tokens (FIM, end of text, file separator)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer

# Spellings of the FIM and file-separator tokens across model families, first match wins
# (\uff5c and \u2581 are DeepSeek's and SentencePiece's own characters).
FIM_PREFIX = (
    "<|fim_prefix|>",
    "<fim_prefix>",
    "<\uff5cfim\u2581begin\uff5c>",
    "<PRE>",
    "\u2581<PRE>",
    "<|fim_begin|>",
)
FIM_SUFFIX = (
    "<|fim_suffix|>",
    "<fim_suffix>",
    "<\uff5cfim\u2581hole\uff5c>",
    "<SUF>",
    "\u2581<SUF>",
    "<|fim_hole|>",
)
FIM_MIDDLE = (
    "<|fim_middle|>",
    "<fim_middle>",
    "<\uff5cfim\u2581end\uff5c>",
    "<MID>",
    "\u2581<MID>",
    "<|fim_end|>",
)
FILE_SEP = ("<|file_sep|>", "<file_sep>", "<|file_separator|>")
# Tried for the end of sequence when no config names one.
EOS_FALLBACK = (
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<eos>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
)
# End-of-infilling tokens also end a completion when the vocabulary has them.
EOT_TOKENS = ("<EOT>", "\u2581<EOT>", "<|eot_id|>", "<|im_end|>")


class Tokenizer:
    """A model's tokenizer. Special-token text inside a document stays text when encoded."""

    def __init__(
        self,
        tokenizer: HFTokenizer,
        eos_token_ids: frozenset[int] = frozenset(),
        chat_template: str | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        # A document may contain "<|fim_prefix|>" literally; it must not become the special id.
        self._tokenizer.encode_special_tokens = True
        self.special_tokens: dict[str, int] = {
            token.content: token_id
            for token_id, token in sorted(tokenizer.get_added_tokens_decoder().items())
        }
        if not eos_token_ids:
            eos_token_ids = frozenset(self._first_of(EOS_FALLBACK))
        extra = {self.special_tokens[t] for t in EOT_TOKENS if t in self.special_tokens}
        self.eos_token_ids: frozenset[int] = frozenset(eos_token_ids | extra)
        self.chat_template = chat_template
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_model_dir(cls, path: Path) -> Tokenizer:
        path = Path(path)
        tokenizer = HFTokenizer.from_file(str(path / "tokenizer.json"))
        config = _read_optional_json(path / "tokenizer_config.json")
        eos: set[int] = set()
        for name in _token_names(config.get("eos_token")):
            token_id = tokenizer.token_to_id(name)
            if token_id is not None:
                eos.add(token_id)
        for config_file, keys in (
            ("genai_config.json", ("model", "eos_token_id")),
            ("generation_config.json", ("eos_token_id",)),
            ("config.json", ("eos_token_id",)),
        ):
            value: Any = _read_optional_json(path / config_file)
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            eos.update(_ids(value))
        template = config.get("chat_template")
        return cls(tokenizer, frozenset(eos), template if isinstance(template, str) else None)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without added special tokens (BOS/EOS)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` of each text, on the library's own threads and without the GIL; offsets are
        not computed (a workspace index wants the ids only)."""
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        return [list(found.ids) for found in encode(list(texts), add_special_tokens=False)]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        """`decode` of each id sequence."""
        texts = self._tokenizer.decode_batch([list(ids) for ids in batch], skip_special_tokens=True)
        return [str(text) for text in texts]

    def token_texts(self) -> list[str]:
        """The text each id adds after other text ("" for special tokens).

        Each id is decoded after an anchor token and the anchor's text cut off: a SentencePiece
        decoder drops the leading space of a text's first token, which inside an answer is there.
        A byte-level piece of a character reads as U+FFFD.
        """
        anchor = self.encode("a")[:1]
        skip = set(self.special_tokens.values())
        head = self.decode(anchor)
        decoded = self._tokenizer.decode_batch(
            [[*anchor, token] for token in range(self.vocab_size)], skip_special_tokens=True
        )
        return [
            "" if token in skip else str(text)[len(head) :] for token, text in enumerate(decoded)
        ]

    def token_id(self, name: str) -> int | None:
        """Id of a special or added token by its content, None if the vocabulary lacks it."""
        if name in self.special_tokens:
            return self.special_tokens[name]
        token_id = self._tokenizer.token_to_id(name)
        return None if token_id is None else int(token_id)

    @property
    def fim_token_ids(self) -> tuple[int, int, int] | None:
        """(prefix, suffix, middle) ids when the model knows fill-in-the-middle."""
        found = [self._first_of(names) for names in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)]
        if all(found):
            return found[0][0], found[1][0], found[2][0]
        return None

    @property
    def file_sep_token_id(self) -> int | None:
        found = self._first_of(FILE_SEP)
        return found[0] if found else None

    def _first_of(self, names: Sequence[str]) -> list[int]:
        for name in names:
            if name in self.special_tokens:
                return [self.special_tokens[name]]
        return []


def _read_optional_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_names(value: Any) -> list[str]:
    """tokenizer_config's eos_token: a string or an AddedToken dict."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return [value["content"]]
    return []


def _ids(value: Any) -> set[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    return set()
