"""The mixing step: which token arrays a request's decoder draws on, and the tokens it starts from.

Decode-time mixing (inference/ngram.py) searches, at each step, for the longest suffix of the
code before the cursor plus what was generated so far. The sources, in the order that wins a
tie: the current buffer, then the other open documents (only when no workspace index covers
them), then the workspace index's segments.

Trade-offs:
- The buffer is tokenized in blocks of lines, each cached by its text, so a keystroke costs the
  tokens of one block and a suffix array of the buffer (a millisecond for a few thousand lines),
  not the whole file's tokenization. A block boundary may tokenize differently from the file as
  a whole; only matches across that one boundary suffer. Every keystroke makes a new block text,
  so the cache is bounded by its bytes, and holds ids as int32 arrays: as lists of Python ints
  (36 bytes a token) 4,096 blocks grew the server by tens of MB over a long session.
- The buffer is split at the cursor by a separator, and its prefix stops where the prompt's
  prefix stops (before the text token healing left out). The tokens before the cursor are always
  found there, and followed by nothing: they predict only from their other occurrences.
- Secret-looking open documents are never a source (the workspace index skips such files too).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from inference.ngram import NgramSource, TokenSuffixIndex
from lsp_server.completion.context import CompletionContext
from lsp_server.workspace.segments import separator_for
from prompts.budget import CompletionPrompt
from prompts.context import Document
from prompts.healing import healed_whitespace


@runtime_checkable
class MixingTokenizer(Protocol):
    """The model's own tokenizer: mixing works in the ids the decoder writes."""

    def encode(self, text: str) -> list[int]: ...

    @property
    def vocab_size(self) -> int: ...


BLOCK_LINES = 32
CONTEXT_CHARS = 600  # of the code before the cursor: far more than the longest match searched
BLOCK_CACHE_BYTES = 8 * 2**20  # block texts and their ids: a few files of 3,000 lines each
_DOCUMENTS_KEPT = 32


class MixingSources:
    """Per completion service: cached tokens of buffer blocks and of open documents."""

    def __init__(self) -> None:
        self._blocks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._block_bytes = 0
        self._documents: OrderedDict[tuple[str, int], TokenSuffixIndex] = OrderedDict()
        self._tokenizer_id = 0

    def _reset_for(self, tokenizer: MixingTokenizer) -> None:
        if id(tokenizer) != self._tokenizer_id:  # a new model: its tokens differ
            self._blocks.clear()
            self._block_bytes = 0
            self._documents.clear()
            self._tokenizer_id = id(tokenizer)

    def _encode_blocks(self, text: str, tokenizer: MixingTokenizer) -> np.ndarray:
        lines = text.splitlines(keepends=True)
        parts: list[np.ndarray] = []
        for start in range(0, len(lines), BLOCK_LINES):
            block = "".join(lines[start : start + BLOCK_LINES])
            tokens = self._blocks.get(block)
            if tokens is None:
                tokens = np.asarray(tokenizer.encode(block), dtype=np.int32)
                self._blocks[block] = tokens
                self._block_bytes += _block_bytes(block, tokens)
                while self._block_bytes > BLOCK_CACHE_BYTES and len(self._blocks) > 1:
                    evicted, evicted_tokens = self._blocks.popitem(last=False)
                    self._block_bytes -= _block_bytes(evicted, evicted_tokens)
            else:
                self._blocks.move_to_end(block)
            parts.append(tokens)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    @property
    def block_cache_bytes(self) -> int:
        return self._block_bytes

    def buffer_index(
        self, prefix: str, suffix: str, tokenizer: MixingTokenizer
    ) -> TokenSuffixIndex:
        separator = separator_for(tokenizer.vocab_size)
        return TokenSuffixIndex.from_documents(
            [self._encode_blocks(prefix, tokenizer), self._encode_blocks(suffix, tokenizer)],
            separator,
        )

    def document_index(self, document: Document, tokenizer: MixingTokenizer) -> TokenSuffixIndex:
        key = (document.uri, hash(document.text))
        found = self._documents.get(key)
        if found is None:
            # Blanks at the very end are where that document's own cursor was: tokenized alone
            # (`return` + ` `), they would teach a lone space after `return`.
            found = TokenSuffixIndex.from_documents(
                [self._encode_blocks(document.text.rstrip(" \t"), tokenizer)],
                separator_for(tokenizer.vocab_size),
            )
            self._documents[key] = found
            if len(self._documents) > _DOCUMENTS_KEPT:
                self._documents.popitem(last=False)
        else:
            self._documents.move_to_end(key)
        return found

    def for_request(
        self,
        context: CompletionContext,
        prompt: CompletionPrompt,
        tokenizer: MixingTokenizer,
        workspace: Sequence[NgramSource],
    ) -> tuple[tuple[NgramSource, ...], tuple[int, ...]]:
        """(sources, the tokens just before the cursor) for one request's decoder."""
        self._reset_for(tokenizer)
        before = _prompt_end(context.prefix, prompt)
        sources: list[NgramSource] = [self.buffer_index(before, context.suffix, tokenizer)]
        if not workspace:
            sources.extend(self.document_index(d, tokenizer) for d in context.public_documents)
        sources.extend(workspace)
        return tuple(sources), tuple(tokenizer.encode(_tail(before)))


def _block_bytes(text: str, tokens: np.ndarray) -> int:
    return sys.getsizeof(text) + tokens.nbytes


def _prompt_end(prefix: str, prompt: CompletionPrompt) -> str:
    """`prefix` up to where the prompt's code stops: before the text token healing left out (or
    the trailing space left out without healing)."""
    left_out = prompt.healed if prompt.healed is not None else healed_whitespace(prefix)
    end = len(prefix) - len(left_out)
    return prefix[:end] if prefix[:end].endswith(prompt.prefix) else prefix


def _tail(text: str) -> str:
    """The last CONTEXT_CHARS of `text`, from a line start when one is near."""
    if len(text) <= CONTEXT_CHARS:
        return text
    window = text[-CONTEXT_CHARS:]
    newline = window.find("\n")
    return window[newline + 1 :] if 0 <= newline < CONTEXT_CHARS // 2 else window
