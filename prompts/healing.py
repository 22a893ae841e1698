"""Token healing: where the prompt stops when the cursor sits inside a token.

A prompt that ends mid-token ends at a boundary the model never saw in training: after `se` or
`fro` a small model starts a new line instead of finishing the word. The fix is to back the
prompt off to an earlier boundary, the one the tokenizer gives the whole word, and let the
model write the removed text again; the scheduler constrains its first tokens to extend
exactly that text, and post-processing drops it from the answer.

A trailing blank is left out but not forced (`forced_text`): the embedded model, asked to
write a lone space first, mostly ends the line there (the 50 whole-line holes of `flashcode eval
repo --cases 100`, seed 0, asked in process: answered 0.86 unforced, 0.18 forced), while it
writes the word after the blanks with or without the space. Post-processing drops the blank
when the answer has it.

Trade-offs. The back-off stays on the cursor's line and removes at most `MAX_TOKENS` tokens and
`MAX_CHARS` characters: more context left to the model is more it may write differently, and a
long constrained start costs decode steps. It only cuts where the kept part encodes to the same
tokens as in the whole line, and never removes a token that is not a whole character on its
own (a byte-level piece of UTF-8), which the constraint could not express.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_TOKENS = 3
MAX_CHARS = 32

# The unit at the cursor a pre-tokenizer keeps whole: a word with the one character before it
# (` fro`, `.fo`, `(se`), a number, or a run of operators with its space (` ==`, `(`).
_UNIT = re.compile(r"(?:[^\w\s]|[ ])?[^\W\d]\w*$|\d+$|[ ]?[^\w\s]+$")


class Encoder(Protocol):
    """The part of prompts.budget.TokenizerLike healing needs (budget imports this module)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class Healing:
    prefix: str  # the code before the cursor that the prompt ends with
    removed: str  # the typed text after it, which the model writes again (forced, then dropped)


def forced_text(removed: str) -> str:
    """What the answer must start with: the removed text, unless it is only blanks."""
    return removed if removed.strip() else ""


def space_then_word(kept_prefix: str, removed: str | None) -> bool:
    """Whether the answer's first token must be the left-out space with the start of a word.

    Mid-line, a typed space is followed by a word or an operator, never by more blanks or the
    end of the line; yet unforced, a small model often writes a run of blanks there and then a
    new statement (`return ` + `    def __repr__(self):`), as if at a line start. A first token
    like ` self` or ` (` is how the tokenizer splits training text after that space. On a line
    of blanks only (`kept_prefix` ends in indentation) the model writes its whole line instead.
    """
    return removed == " " and bool(kept_prefix[kept_prefix.rfind("\n") + 1 :].strip())


def healed_whitespace(prefix: str) -> str:
    """The typed blank the prompt leaves out: a trailing space only.

    BPE pre-tokenizers split a run of blanks before a word into the run less its last character,
    then that space joined to the word (`"       "`, `" if"`). A prompt that ends in the whole
    run ends at a token boundary the model never saw, and one without the run makes it write the
    indentation again, which a small model often does not. Leaving out just the last space ends
    the prompt where training text has a boundary; the model writes the space with its first word.
    Tabs stand alone in those vocabularies, so a run ending in a tab is left whole.
    """
    return " " if prefix.endswith(" ") else ""


def back_off(prefix: str, tokenizer: Encoder) -> Healing:
    """The prefix backed off to the token boundary before the partial word, operator or space at
    the cursor, and the text removed (empty when the prefix already ends at a good boundary)."""
    blank = healed_whitespace(prefix)
    if blank or not prefix or prefix[-1].isspace():
        return Healing(prefix[: len(prefix) - len(blank)], blank)
    line = prefix[prefix.rfind("\n") + 1 :]
    window = line[-2 * MAX_CHARS :]  # enough text before the cursor for its last tokens
    unit = _UNIT.search(window)
    if unit is None:
        return Healing(prefix, "")
    wanted = len(window) - unit.start()
    ids = tokenizer.encode(window)
    best = ""
    for count in range(1, min(MAX_TOKENS, len(ids)) + 1):
        removed = tokenizer.decode(ids[-count:])
        if len(removed) > MAX_CHARS or not window.endswith(removed):
            break
        if any("\ufffd" in tokenizer.decode([i]) for i in ids[-count:]):
            continue  # a piece of a character: only whole characters can be forced
        if tokenizer.encode(window[: len(window) - len(removed)]) != ids[:-count]:
            continue  # the kept part would encode differently on its own
        best = removed
        if len(removed) >= wanted:
            break
    return Healing(prefix[: len(prefix) - len(best)], best)
