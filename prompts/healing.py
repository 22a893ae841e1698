"""Token healing: where the prompt stops when the cursor sits inside a token.

A prompt that ends mid-token ends at a boundary the model never saw in training; the fix is to
end the prompt at an earlier boundary and let the model write the rest. For now only the last
typed space is left to the model; a partial word stays in the prompt as typed.
"""

from __future__ import annotations


def healed_whitespace(prefix: str) -> str:
    """The typed blank the prompt leaves out (token healing): a trailing space only.

    BPE pre-tokenizers split a run of blanks before a word into the run less its last character,
    then that space joined to the word (`"       "`, `" if"`). A prompt that ends in the whole
    run ends at a token boundary the model never saw, and one without the run makes it write the
    indentation again, which a small model often does not. Leaving out just the last space ends
    the prompt where training text has a boundary; the model writes the space with its first word
    and post-processing drops what the user already typed. Tabs stand alone in those
    vocabularies, so a run ending in a tab is left whole.
    """
    return " " if prefix.endswith(" ") else ""
