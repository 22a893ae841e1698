"""The mixing step's buffer tokens: cached by block, equal to tokenizing each block, bounded."""

from __future__ import annotations

import pytest

from inference.router import default_model_dir
from inference.tokenizer import Tokenizer
from lsp_server.completion import mixing_step
from lsp_server.completion.mixing_step import BLOCK_LINES, MixingSources

TOKENIZER = Tokenizer.from_model_dir(default_model_dir())


def buffer_text(lines: int, salt: int = 0) -> str:
    return "".join(
        f"    value_{salt}_{n} = compute(item_{n}, limit={n % 7})\n" for n in range(lines)
    )


def test_buffer_ids_are_the_blocks_tokenized_one_by_one() -> None:
    text = buffer_text(3 * BLOCK_LINES + 5)
    lines = text.splitlines(keepends=True)
    expected = [
        token
        for start in range(0, len(lines), BLOCK_LINES)
        for token in TOKENIZER.encode("".join(lines[start : start + BLOCK_LINES]))
    ]
    index = MixingSources().buffer_index(text, "", TOKENIZER)
    separator = index.separator
    assert index.tokens.tolist() == [*expected, separator, separator]


def test_a_long_session_of_keystrokes_keeps_the_block_cache_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bound = 256 * 1024  # small, to be reached quickly
    monkeypatch.setattr(mixing_step, "BLOCK_CACHE_BYTES", bound)
    sources = MixingSources()
    text = buffer_text(4 * BLOCK_LINES)
    for keystroke in range(600):  # every keystroke changes the block it lands in
        text += "x" if keystroke % 40 else "\n"
        sources.buffer_index(text, "", TOKENIZER)
        assert sources.block_cache_bytes <= bound
    assert sources.block_cache_bytes > bound // 2  # it does cache: the bound was reached
    lines = text.splitlines(keepends=True)
    tail = TOKENIZER.encode("".join(lines[(len(lines) - 1) // BLOCK_LINES * BLOCK_LINES :]))
    last = sources.buffer_index(text, "", TOKENIZER)
    assert last.tokens[-len(tail) - 2 : -2].tolist() == tail
