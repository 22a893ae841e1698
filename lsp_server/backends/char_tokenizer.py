"""A character budget in a tokenizer's clothes, for a remote model whose tokenizer is not at hand.

The prompt builder fits prompts in tokens; without `modelPath` there is no tokenizer of the
server's model to count them. This one counts a token per three ASCII characters and a token per
other character. Code tokenizers give three to four characters a token on source code (more on
runs of indentation), so the count is on the high side and the prompt lands a little under
`contextBudget` real tokens rather than over the server's context.

Ids are reversible, so the remote backend turns a prompt's ids back into its text: an id below
0x110000 is that one character; ASCII pairs and triples are packed above it in base 128; the FIM
template's special tokens come after those. All ids fit 32 bits, as the exact cache's keys need.
Chunks are cut from the start of each text encoded, so the count of a text depends a little on
where it starts: like BPE, good enough for a budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prompts.fim import FimTemplate

_UNICODE = 0x110000
_PAIRS = _UNICODE  # 128 * 128 ids
_TRIPLES = _PAIRS + 128 * 128  # 128 ** 3 ids
_SPECIALS = _TRIPLES + 128**3
_CHUNK = re.compile(r"[\x00-\x7f]{1,3}|[^\x00-\x7f]", re.S)
CHARS_PER_TOKEN = 3  # ASCII characters a token counts for (README: "For a team")


class CharTokenizer:
    """Counts characters; knows the special tokens of one FIM template, and no chat template."""

    def __init__(self, template: FimTemplate) -> None:
        texts = [*template.special_texts(), *([template.bos_token] if template.bos_token else [])]
        self.template = template
        self.special_tokens: dict[str, int] = {
            text: _SPECIALS + index for index, text in enumerate(dict.fromkeys(texts))
        }
        end = template.stop_tokens[0]  # each family's end of text comes first in its stops
        self.eos_token_ids: frozenset[int] = frozenset({self.special_tokens[end]})
        self.chat_template: str | None = None

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for chunk in _CHUNK.findall(text):
            codes = [ord(c) for c in chunk]
            if len(codes) == 1:
                ids.append(codes[0])
            elif len(codes) == 2:
                ids.append(_PAIRS + codes[0] * 128 + codes[1])
            else:
                ids.append(_TRIPLES + (codes[0] * 128 + codes[1]) * 128 + codes[2])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; special tokens are left out, as a model tokenizer's decode does."""
        parts: list[str] = []
        for token_id in ids:
            if token_id < _PAIRS:
                parts.append(chr(token_id))
            elif token_id < _TRIPLES:
                code = token_id - _PAIRS
                parts.append(chr(code // 128) + chr(code % 128))
            elif token_id < _SPECIALS:
                code = token_id - _TRIPLES
                parts.append(chr(code // 16384) + chr(code // 128 % 128) + chr(code % 128))
        return "".join(parts)

    def token_id(self, name: str) -> int | None:
        return self.special_tokens.get(name)
