"""Fitting the prompt into the model's budget, in tokens, and writing its token ids.

Priority when the budget is short: the code before the cursor (its end, whole lines), then the
code after it (its start, whole lines), then the file's imports and snippets of other files
(retrieved from the workspace and the open documents, ranked together, best first; or, without a
workspace index, from the open documents alone). Each part first gets a share of the budget;
what one part leaves unused goes to the next in that order.

The token ids are built piecewise: each text part is encoded on its own and the template's
special tokens are inserted by id. A document that contains "<|fim_prefix|>" as text therefore
stays text, and the count of each part is exact.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prompts.context import (
    Document,
    Snippet,
    already_in,
    as_comment,
    display_path,
    header,
    imports,
    related_snippets,
    split_at_cursor,
)
from prompts.fim import FimTemplate
from prompts.healing import back_off, healed_whitespace
from prompts.languages import code_rules, language_of
from prompts.multiline import wants_multiline


class TokenizerLike(Protocol):
    def encode(self, text: str) -> list[int]: ...  # no special tokens added or recognized

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_id(self, name: str) -> int | None: ...


@dataclass(frozen=True)
class CompletionPrompt:
    token_ids: tuple[int, ...]
    prefix: str  # the code before the cursor that made it in, after trimming
    suffix: str  # the code after the cursor that made it in
    header: str  # the path and language lines (or the path line of a repository-level prompt)
    snippets: tuple[str, ...]  # the related snippets included, as rendered
    multiline: bool
    language: str  # the grammar name, or the editor's language id when there is no grammar
    stop_token_ids: frozenset[int]
    stop_strings: tuple[str, ...]
    template: str = ""  # the FIM template's name
    imports: tuple[str, ...] = ()  # import statements added above a trimmed prefix
    text: str = ""  # the whole prompt as text, special tokens by name: for debug logs only
    # The typed text before the cursor that token healing left out of `prefix`: the model writes
    # it again (the request forces it) and post-processing drops it from the answer. None: the
    # prompt was not healed (only a trailing space was left out, and nothing is forced).
    healed: str | None = None
    snippet_sources: tuple[str, ...] = ()  # "path:line" (1-based) of each snippet included


@dataclass(frozen=True)
class BudgetShares:
    """First shares of the budget; what a part leaves unused goes to the next one."""

    prefix: float = 0.6
    suffix: float = 0.2  # the rest, 0.2, is for imports and snippets


# Guesses from the measured characters per token before plain bisection takes over.
_INTERPOLATION_STEPS = 4
# A trimmed prefix starts at a line whose number in the file is a multiple of this. Cut at the
# first line that fits, the start moves down a line whenever the code before the cursor grows
# by a line's worth of tokens, and with it every token of the prompt after the header: the KV
# of the previous prompt (prefix cache, warm context) is then lost on a keystroke. Aligned, the
# start moves once every PREFIX_ALIGN_LINES such steps, for on average half that many lines of
# context fewer. (Measured at the 0.5B shape: the first keystroke after a warm kept 48 of 1,016
# prompt tokens at 3 of 4 cursor lines unaligned.)
PREFIX_ALIGN_LINES = 8
# Below this many lines the prefix is cut at the first line that fits: aligning it would cost
# too large a part of a short prefix.
ALIGN_MIN_PREFIX_LINES = 4 * PREFIX_ALIGN_LINES


class _Encoder:
    """The tokenizer, remembering the texts it encoded and how many characters a token takes.

    Fitting asks for the same texts again (the prefix is fitted twice) and guesses cut points
    from characters per token, which code keeps fairly steady within a file.
    """

    def __init__(self, tokenizer: TokenizerLike) -> None:
        self.tokenizer = tokenizer
        self.chars_per_token = 4.0
        self._memo: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._memo.get(text)
        if ids is None:
            ids = self._memo[text] = self.tokenizer.encode(text)
            if len(text) >= 256 and ids:
                self.chars_per_token = len(text) / len(ids)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def token_id(self, name: str) -> int | None:
        return self.tokenizer.token_id(name)


def _encoder(tokenizer: TokenizerLike) -> _Encoder:
    return tokenizer if isinstance(tokenizer, _Encoder) else _Encoder(tokenizer)


def _fit(
    lengths: Sequence[int], piece: Callable[[int], str], encoder: _Encoder, limit: int
) -> tuple[str, list[int]] | None:
    """The longest `piece(length)` within `limit` tokens, `lengths` ordered longest first.

    Token counts shrink with the length, so this is a search over `lengths`; its first guesses
    come from the characters per token measured so far, which usually lands within a line or
    two of the answer, then it bisects.
    """
    lo, hi = 0, len(lengths)  # the answer is lengths[lo] once lo == hi - 1, or none
    best: tuple[str, list[int]] | None = None
    steps = 0
    while lo < hi:
        if steps < _INTERPOLATION_STEPS:
            target = limit * encoder.chars_per_token
            # lengths is descending: count the entries longer than the target
            guess = lo + bisect.bisect_left([-n for n in lengths[lo:hi]], -target)
            mid = min(max(guess, lo), hi - 1)
        else:
            mid = (lo + hi) // 2
        steps += 1
        text = piece(lengths[mid])
        ids = encoder.encode(text)
        if len(ids) <= limit:
            best, hi = (text, ids), mid
        else:
            lo = mid + 1
    return best


def _window(text: str, limit: int, encoder: _Encoder, from_end: bool) -> tuple[str, list[int]]:
    """A line-aligned piece of `text` at its end (or start) holding more than `limit` tokens,
    or all of `text` when it holds no more than that; never the whole text encoded for a
    10,000-line file."""
    size = int(limit * encoder.chars_per_token * 1.15) + 1
    while True:
        if size >= len(text):
            piece = text
        elif from_end:
            cut = text.find("\n", len(text) - size)
            piece = text[cut + 1 :] if -1 < cut < len(text) - 1 else text[-size:]
        else:
            cut = text.rfind("\n", 0, size)
            piece = text[: cut + 1] if cut != -1 else text[:size]
        ids = encoder.encode(piece)
        if len(ids) > limit or piece is text:
            return piece, ids
        size = int(size * max(1.25, 1.15 * limit / max(len(ids), 1))) + 1


def keep_end(text: str, limit: int, tokenizer: TokenizerLike) -> tuple[str, list[int]]:
    """The end of `text` within `limit` tokens, starting at a line start when possible."""
    if limit <= 0 or not text:
        return "", []
    encoder = _encoder(tokenizer)
    window, ids = _window(text, limit, encoder, from_end=True)
    if len(ids) <= limit:
        return window, ids
    size = len(window)
    lengths = [size - m.end() for m in re.finditer("\n", window) if m.end() < size]
    found = _fit(lengths, lambda n: window[size - n :], encoder, limit)
    if found is not None:
        return found
    # Even the cursor's own line is too long: keep its end, cut anywhere.
    line = window[window.rfind("\n") + 1 :]
    found = _fit(range(len(line), 0, -1), lambda n: line[len(line) - n :], encoder, limit)
    return found if found is not None else ("", [])


def keep_start(text: str, limit: int, tokenizer: TokenizerLike) -> tuple[str, list[int]]:
    """The start of `text` within `limit` tokens, ending at a line end when possible."""
    if limit <= 0 or not text:
        return "", []
    encoder = _encoder(tokenizer)
    window, ids = _window(text, limit, encoder, from_end=False)
    if len(ids) <= limit:
        return window, ids
    size = len(window)
    lengths = [m.end() for m in re.finditer("\n", window) if m.end() < size][::-1]
    found = _fit(lengths, lambda n: window[:n], encoder, limit)
    if found is not None:
        return found
    end = window.find("\n")
    line = window[: end if end != -1 else size]
    found = _fit(range(len(line), 0, -1), lambda n: line[:n], encoder, limit)
    return found if found is not None else ("", [])


def _aligned_prefix(
    prefix_full: str, prefix: str, ids: list[int], tokenizer: _Encoder
) -> tuple[str, list[int]]:
    """A trimmed prefix of at least ALIGN_MIN_PREFIX_LINES lines moved down to the next line
    whose number is a multiple of PREFIX_ALIGN_LINES."""
    cut = len(prefix_full) - len(prefix)
    if cut == 0 or prefix_full[cut - 1] != "\n":  # whole, or cut inside a line
        return prefix, ids
    if prefix.count("\n") < ALIGN_MIN_PREFIX_LINES:
        return prefix, ids
    first_line = prefix_full.count("\n", 0, cut)
    drop = -first_line % PREFIX_ALIGN_LINES
    start = 0
    for _ in range(drop):
        newline = prefix.find("\n", start)
        if newline == -1:
            break
        start = newline + 1
    if start == 0 or start >= len(prefix):
        return prefix, ids
    return prefix[start:], tokenizer.encode(prefix[start:])


def _special_id(tokenizer: TokenizerLike, token: str, template: FimTemplate) -> int:
    token_id = tokenizer.token_id(token)
    if token_id is None:
        raise ValueError(
            f"the tokenizer has no {token!r} token, which FIM template {template.name!r} needs"
        )
    return token_id


@dataclass
class _Context:
    """Snippets and imports chosen for the prompt, rendered, with their token ids."""

    snippets: list[str]  # as rendered into the prompt
    sources: list[str]  # "path:line" of each
    snippet_ids: list[list[int]]  # the file separator's id included, in repository layout
    imports: list[str]
    import_ids: list[int]

    @property
    def size(self) -> int:
        return sum(len(ids) for ids in self.snippet_ids) + len(self.import_ids)


def _imports_block(statements: Sequence[str]) -> str:
    return "\n".join(statements) + "\n\n" if statements else ""


def _choose_context(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    tokenizer: _Encoder,
    prefix: str,
    suffix: str,
    limit: int,
    file_sep: int | None,
    max_snippets: int,
    retrieved: Sequence[Snippet] | None,
) -> _Context:
    # file_sep: the separator's id when snippets are written as files, else None (comments)
    """Imports missing from a trimmed prefix first, then the best snippets that fit."""
    context = _Context([], [], [], [], [])
    if limit <= 0:
        return context
    room = limit
    # Only the code cut off above the prefix can hold imports the prompt lacks.
    cut_off = document.text[: offset - len(prefix)]
    missing = [s for s in imports(cut_off, document.language_id) if s not in prefix]
    if missing:
        ids = tokenizer.encode(_imports_block(missing))
        if len(ids) <= room:
            context.imports, context.import_ids, room = missing, ids, room - len(ids)
    if retrieved is None:
        snippets = related_snippets(
            document,
            offset,
            open_documents,
            max_snippets=max_snippets,
            exclude_text=prefix + suffix,
        )
    else:  # ranked already; only the prompt's own code is left to compare them with
        shown = prefix + suffix
        snippets = [s for s in retrieved if not already_in(s.text, shown)][:max_snippets]
    for snippet in snippets:
        fitted = _fit_snippet(snippet, document.language_id, file_sep, tokenizer, room)
        if fitted is not None:
            context.snippets.append(fitted[0])
            context.sources.append(f"{snippet.path}:{snippet.start_line + 1}")
            context.snippet_ids.append(fitted[1])
            room -= len(fitted[1])
    return context


# A snippet too long for the room left is cut to its first lines, down to this many; fewer say
# too little to be worth their tokens.
MIN_SNIPPET_LINES = 4


def _render_snippet(path: str, text: str, language_id: str, as_file: bool) -> str:
    if as_file:
        return f"{path}\n{text}"
    return as_comment(f"Compare this snippet from {path}:\n{text}", language_id)


def _fit_snippet(
    snippet: Snippet, language_id: str, file_sep: int | None, tokenizer: _Encoder, room: int
) -> tuple[str, list[int]] | None:
    """The snippet rendered (and its ids, the file separator's first in repository layout)
    within `room` tokens: whole, or its first lines (at least MIN_SNIPPET_LINES); None if not."""
    lines = snippet.text.splitlines(keepends=True)
    lead = [file_sep] if file_sep is not None else []

    def attempt(count: int) -> tuple[str, list[int]] | None:
        rendered = _render_snippet(
            snippet.path, "".join(lines[:count]), language_id, file_sep is not None
        )
        if len(rendered) > 1.5 * room * tokenizer.chars_per_token:
            return None  # clearly too long: not worth encoding
        ids = [*lead, *tokenizer.encode(rendered)]
        return (rendered, ids) if len(ids) <= room else None

    best = attempt(len(lines))
    if best is not None:
        return best
    low, high = MIN_SNIPPET_LINES, len(lines) - 1  # bisect on the count of lines kept
    while low <= high:
        middle = (low + high) // 2
        found = attempt(middle)
        if found is None:
            high = middle - 1
        else:
            best, low = found, middle + 1
    return best


def _stop_strings(
    multiline: bool, language: str, template: FimTemplate, tokenizer: TokenizerLike
) -> tuple[str, ...]:
    stops: list[str] = list(code_rules(language).multiline_stops) if multiline else ["\n"]
    # A stop token the tokenizer does not know as one can only be caught as text.
    stops.extend(t for t in template.stop_tokens if tokenizer.token_id(t) is None)
    return tuple(stops)


def build_completion_prompt(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    tokenizer: TokenizerLike,
    template: FimTemplate,
    budget_tokens: int = 1024,
    *,
    repo_level: bool = False,
    max_snippets: int = 4,
    shares: BudgetShares = BudgetShares(),
    multiline: bool | None = None,
    healing: bool = True,
    retrieved: Sequence[Snippet] | None = None,
) -> CompletionPrompt:
    """The FIM prompt for a cursor at `offset` (a str index) in `document`.

    `repo_level=True` writes other files' snippets as files separated by the template's file
    separator (the repository-level format Qwen2.5-Coder and StarCoder2 were trained on); the
    default writes them as comments, which any model reads, including ones trained on plain
    file-level FIM. With nothing but blanks after the cursor the prompt is plain code, without FIM
    tokens. `multiline` overrides the syntax-based choice of a one-line or a block answer.
    `healing` backs the prompt off the partial token at the cursor (prompts.healing); without it
    only a trailing space is left out, and the answer is not forced to write it again.
    `retrieved`: the related snippets, best first, from the workspace and the open documents
    (prompts.retrieval); None: from `open_documents` alone (context.related_snippets).
    """
    prefix_full, suffix_full = split_at_cursor(document.text, offset)
    healed: str | None = None
    if healing:
        healing_cut = back_off(prefix_full, tokenizer)
        prefix_full, healed = healing_cut.prefix, healing_cut.removed
    else:
        prefix_full = prefix_full[: len(prefix_full) - len(healed_whitespace(prefix_full))]
    language = language_of(document.language_id, document.path) or document.language_id
    tokenizer = _Encoder(tokenizer)
    pre = _special_id(tokenizer, template.prefix_token, template)
    suf = _special_id(tokenizer, template.suffix_token, template)
    mid = _special_id(tokenizer, template.middle_token, template)
    bos = tokenizer.token_id(template.bos_token) if template.bos_token else None
    file_sep = tokenizer.token_id(template.file_sep_token) if template.file_sep_token else None
    as_files = repo_level and file_sep is not None

    head = f"{display_path(document.path)}\n" if as_files else header(document)
    head_ids = tokenizer.encode(head)
    fixed = 3 + (bos is not None) + as_files
    if len(head_ids) > budget_tokens // 8:  # a path that long is not worth its cost
        head, head_ids = "", []
    available = max(0, budget_tokens - fixed - len(head_ids))

    def fit_prefix(limit: int) -> tuple[str, list[int]]:
        return _aligned_prefix(prefix_full, *keep_end(prefix_full, limit, tokenizer), tokenizer)

    prefix, prefix_ids = fit_prefix(int(available * shares.prefix))
    suffix, suffix_ids = keep_start(suffix_full, int(available * shares.suffix), tokenizer)
    trimmed = len(prefix) < len(prefix_full) or len(suffix) < len(suffix_full)
    context_share = available - int(available * shares.prefix) - int(available * shares.suffix)
    context_limit = context_share if trimmed else available - len(prefix_ids) - len(suffix_ids)
    context = _choose_context(
        document,
        offset,
        open_documents,
        tokenizer,
        prefix,
        suffix,
        context_limit,
        file_sep if as_files else None,
        max_snippets,
        retrieved,
    )
    # What the shares left unused goes to the prefix first, then to the suffix.
    room = available - len(suffix_ids) - context.size
    if len(prefix) < len(prefix_full) and room > len(prefix_ids):
        prefix, prefix_ids = fit_prefix(room)
        kept = [s for s in context.imports if s not in prefix]
        if kept != context.imports:  # the longer prefix now holds some of them itself
            context.imports = kept
            context.import_ids = tokenizer.encode(_imports_block(kept)) if kept else []
    room = available - len(prefix_ids) - context.size
    if len(suffix) < len(suffix_full) and room > len(suffix_ids):
        suffix, suffix_ids = keep_start(suffix_full, room, tokenizer)

    # Nothing after the cursor: plain left-to-right code, no FIM tokens. Every code model reads
    # that, and a small model reads it better than a FIM prompt with an empty suffix. In the
    # repository format it is the file's text after its path, as in the format's training rows.
    plain = not suffix_full.strip()
    ids: list[int] = [bos] if bos is not None else []
    parts: list[str] = [template.bos_token or ""] if bos is not None else []
    if as_files:
        assert file_sep is not None and template.file_sep_token is not None
        for rendered, snippet_ids in zip(context.snippets, context.snippet_ids, strict=True):
            ids += snippet_ids  # the separator's id leads them
            parts += [template.file_sep_token, rendered]
        if plain:  # <|file_sep|>path\ncode...
            ids += [file_sep, *head_ids]
            parts += [template.file_sep_token, head]
        elif template.path_inside_prefix:  # StarCoder2: <file_sep><fim_prefix>path\ncode...
            ids += [file_sep, pre, *head_ids]
            parts += [template.file_sep_token, template.prefix_token, head]
        else:  # Qwen2.5-Coder: <|file_sep|>path\n<|fim_prefix|>code...
            ids += [file_sep, *head_ids, pre]
            parts += [template.file_sep_token, head, template.prefix_token]
    else:
        if not plain:
            ids.append(pre)
            parts.append(template.prefix_token)
        ids += head_ids
        parts.append(head)
        for rendered, snippet_ids in zip(context.snippets, context.snippet_ids, strict=True):
            ids += snippet_ids
            parts.append(rendered)
    ids += [*context.import_ids, *prefix_ids]
    parts += [_imports_block(context.imports), prefix]
    if not plain:
        ids += [suf, *suffix_ids, mid]
        parts += [template.suffix_token, suffix, template.middle_token]

    if multiline is None:
        multiline = wants_multiline(document.text, offset, language)
    stop_ids = frozenset(
        token_id
        for token_id in (tokenizer.token_id(t) for t in template.stop_tokens)
        if token_id is not None
    )
    return CompletionPrompt(
        token_ids=tuple(ids),
        prefix=prefix,
        suffix=suffix,
        header=head,
        snippets=tuple(context.snippets),
        multiline=multiline,
        language=language,
        stop_token_ids=stop_ids,
        stop_strings=_stop_strings(multiline, language, template, tokenizer),
        template=template.name,
        imports=tuple(context.imports),
        text="".join(parts),
        healed=healed,
        snippet_sources=tuple(context.sources),
    )
