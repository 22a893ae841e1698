"""Forced first tokens: which tokens may start an answer that must begin with a given text.

Token healing backs the prompt off the partial word at the cursor; the answer then has to write
that text again, in whatever tokens the model likes (`se` as `self`, ` f` + `rom`...). While
part of the forced text is still unwritten, a token is allowed when its text is a prefix of that
remainder or starts with all of it.

The vocabulary is indexed once per tokenizer: its token texts sorted, so the tokens starting
with the remainder are one bisected range, and a dict from text to ids for the remainder's own
prefixes. A forced step asks for the same remainder two or three times (the mixer, the sampler,
`reaching`), and concurrent requests share remainders, so both answers are memoized per
remainder, as read-only arrays. Trade-offs:
- a token that decodes to a piece of a UTF-8 character, or to nothing (special tokens), is
  never allowed while forcing: the forced text is whole characters, and an empty token would
  not advance it;
- after a remainder that ends in a blank, a token that writes more blanks is refused: the user
  typed exactly those blanks, and a model that starts a new line's indentation there is wrong.
  The same holds for the one token after a forced text that ends in a blank (`after_blank`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

_BLANKS = (" ", "\t")
_TOP = "\U0010ffff"  # sorts after every character: p <= s < p + _TOP for each s starting with p
_MEMO_LIMIT = 4096  # remainders kept per index; past it the memo starts again


class ForcedPrefixIndex:
    """Token texts of a vocabulary (index = id; "" for tokens never allowed while forcing)."""

    def __init__(self, texts: Sequence[str]) -> None:
        usable = [
            (text, token) for token, text in enumerate(texts) if text and "\ufffd" not in text
        ]
        usable.sort()
        self._sorted = [text for text, _ in usable]
        self._ids = np.array([token for _, token in usable], dtype=np.int64)
        self._by_text: dict[str, list[int]] = {}
        for text, token in usable:
            self._by_text.setdefault(text, []).append(token)
        self._longest = max((len(text) for text in self._sorted), default=0)
        self.size = len(texts)
        self._texts = list(texts)
        self._after_blank = np.array(
            [token for token, text in enumerate(texts) if not text.startswith(_BLANKS)],
            dtype=np.int64,
        )
        self._after_blank.flags.writeable = False
        self._space_then_word = np.array(
            [
                token
                for token, text in enumerate(texts)
                if len(text) > 1
                and text[0] == " "
                and not text[1].isspace()
                and "\ufffd" not in text
            ],
            dtype=np.int64,
        )
        self._space_then_word.flags.writeable = False
        self._everything = np.arange(self.size, dtype=np.int64)
        self._everything.flags.writeable = False
        self._allowed_memo: dict[str, np.ndarray] = {}
        self._reaching_memo: dict[str, np.ndarray] = {}

    def _range(self, start: str) -> tuple[int, int]:
        return (
            bisect.bisect_left(self._sorted, start),
            bisect.bisect_left(self._sorted, start + _TOP),
        )

    def allowed(self, remainder: str) -> np.ndarray:
        """Ids of the tokens that may come next while `remainder` is still to be written
        (read-only)."""
        if not remainder:
            return self._everything
        found = self._allowed_memo.get(remainder)
        if found is None:
            found = _remember(self._allowed_memo, remainder, self._allowed(remainder))
        return found

    def _allowed(self, remainder: str) -> np.ndarray:
        lo, hi = self._range(remainder)
        parts = [self._ids[lo:hi]]
        if remainder.endswith(_BLANKS):
            parts = []
            cuts = sorted(self._range(remainder + blank) for blank in _BLANKS)
            start = lo
            for cut_lo, cut_hi in cuts:
                parts.append(self._ids[start:cut_lo])
                start = max(start, cut_hi)
            parts.append(self._ids[start:hi])
        shorter = [
            token
            for length in range(1, min(len(remainder) - 1, self._longest) + 1)
            for token in self._by_text.get(remainder[:length], ())
        ]
        parts.append(np.array(shorter, dtype=np.int64))
        return np.unique(np.concatenate(parts))

    def reaching(self, remainder: str) -> np.ndarray:
        """The allowed tokens that write all of `remainder` (and maybe more), when the
        vocabulary has any; else every allowed token. A BPE tokenizer writes a word with the
        longest pieces its merges reach, so a token that stops inside the typed piece
        (`Imp` for `Implem`) splits the word as no training text did, and the model and the
        workspace match both lose track of it. Read-only."""
        allowed = self.allowed(remainder)
        if not remainder:
            return allowed
        found = self._reaching_memo.get(remainder)
        if found is None:
            lo, hi = self._range(remainder)
            reaching = np.intersect1d(allowed, self._ids[lo:hi], assume_unique=True)
            found = reaching if reaching.size else allowed
            _remember(self._reaching_memo, remainder, found)
        return found

    def after_blank(self) -> np.ndarray:
        """Ids that may follow a forced text ending in a blank: none that starts with one."""
        return self._after_blank

    def space_then_word(self) -> np.ndarray:
        """Ids whose text is one space and then the start of a word or operator (` self`)."""
        return self._space_then_word

    def ends_on_blank(self, remainder: str, token: int) -> bool:
        """Whether `token` writes exactly the rest of `remainder`, which ends in a blank: the
        token after it must then not start with one (`after_blank`)."""
        return (
            remainder.endswith(_BLANKS)
            and 0 <= token < self.size
            and (self._texts[token] == remainder)
        )

    def advance(self, remainder: str, token: int) -> str:
        """What is left to write of `remainder` after `token`."""
        text = self._texts[token] if 0 <= token < self.size else ""
        if text and remainder.startswith(text):
            return remainder[len(text) :]
        return ""


def _remember(memo: dict[str, np.ndarray], remainder: str, ids: np.ndarray) -> np.ndarray:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    ids.flags.writeable = False
    memo[remainder] = ids
    return ids


def constrain(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """`logits` with every id outside `allowed` at -inf (a copy)."""
    masked = np.full_like(logits, -np.inf)
    allowed = allowed[allowed < logits.shape[-1]]
    masked[allowed] = logits[allowed]
    return masked
