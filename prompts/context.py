"""What goes into a prompt besides the code at the cursor: imports, a header, related snippets.

Related snippets follow the neighbouring-tabs idea: slide a window over the other open
documents of the same language and keep the windows whose identifiers overlap most (Jaccard
similarity of identifier sets) with the lines just above the cursor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath, PureWindowsPath

from prompts.languages import FALLBACK_COMMENT, language_for


def _words(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True)
class Document:
    uri: str
    path: str  # shown to the model: a workspace-relative path reads best
    language_id: str  # the editor's language id ("python", "typescriptreact"...)
    text: str


@dataclass(frozen=True)
class Snippet:
    path: str
    text: str  # whole lines, ending with a newline
    score: float  # Jaccard similarity to the cursor window, 0..1
    start_line: int  # 0-based line of the snippet's first line in its document


def split_at_cursor(text: str, offset: int) -> tuple[str, str]:
    """Prefix and suffix around a cursor given as a str index."""
    if not 0 <= offset <= len(text):
        raise ValueError(f"cursor offset {offset} is outside the document (length {len(text)})")
    return text[:offset], text[offset:]


def cursor_line(prefix: str) -> str:
    """The cursor's line up to the cursor, from the text before it."""
    return prefix[prefix.rfind("\n") + 1 :]


def rest_of_line(suffix: str) -> str:
    """The cursor's line after the cursor, from the text after it."""
    end = suffix.find("\n")
    return suffix if end == -1 else suffix[:end]


# What may follow the cursor on its line for a suggestion typed as you go: closing brackets and
# quotes, then at most one `:`, `;`, `,` or `{` (the rule editors' completion engines use).
_COMPLETABLE_REST_OF_LINE = re.compile(r"\s*[)\]}>\"'`]*\s*[:;,{]?\s*")


def completable_mid_line(suffix: str) -> bool:
    """Whether an as-you-type suggestion fits before `suffix`: nothing but closers and a final
    punctuation mark may follow the cursor on its line. Anywhere else a suggestion would have to
    be written around the code already there, and a small model mostly gets that wrong."""
    return _COMPLETABLE_REST_OF_LINE.fullmatch(rest_of_line(suffix).rstrip("\r")) is not None


# --- comments and the header ----------------------------------------------------------------


def comment_markers(language_id: str) -> tuple[str, str]:
    """Line comment start and end for a language (end is "" for line comments)."""
    spec = language_for(language_id)
    return spec.comment if spec is not None else FALLBACK_COMMENT


def as_comment(text: str, language_id: str) -> str:
    """Every line of `text` turned into a comment, each ending with a newline."""
    start, end = comment_markers(language_id)
    return "".join(f"{start}{line}{end}".rstrip() + "\n" for line in text.splitlines())


def display_path(path: str) -> str:
    """The path as the model sees it: absolute paths shortened to their last three parts."""
    pure = PureWindowsPath(path) if re.match(r"^[A-Za-z]:[\\/]", path) else PurePosixPath(path)
    if pure.is_absolute() and len(pure.parts) > 4:
        return "/".join(pure.parts[-3:])
    return path.replace("\\", "/")


def header(document: Document) -> str:
    """Comment lines naming the file and its language, as the first lines of the prompt."""
    return as_comment(
        f"Path: {display_path(document.path)}\nLanguage: {document.language_id}",
        document.language_id,
    )


# --- imports ----------------------------------------------------------------------------------

_OPENERS = "([{"
_CLOSERS = ")]}"


def imports(text: str, language_id: str) -> list[str]:
    """The file's top-level import statements, each whole (parenthesized lists included)."""
    spec = language_for(language_id)
    pattern = spec.imports if spec is not None else None
    if pattern is None:
        return []
    found: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not pattern.match(line):
            continue
        statement = [line]
        depth = sum(line.count(c) for c in _OPENERS) - sum(line.count(c) for c in _CLOSERS)
        # Statements continue over lines while brackets are open, or after a backslash.
        while index < len(lines) and (depth > 0 or statement[-1].rstrip().endswith("\\")):
            line = lines[index]
            index += 1
            statement.append(line)
            depth += sum(line.count(c) for c in _OPENERS) - sum(line.count(c) for c in _CLOSERS)
        found.append("\n".join(statement))
    return found


# --- related snippets from other open documents ----------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keywords say nothing about what the code is about; leaving them out sharpens the similarity.
_STOP_WORDS = frozenset(
    _words(
        """
    and as assert async await break case catch class const continue def default del do elif else
    enum except export extends false final finally fn for from func function go if impl import
    in interface is lambda let match mut new nil none not null or package pass private protected
    pub public raise return self static struct super switch this throw throws true try type
    typeof use var void while with yield int str bool float string
    """
    )
)
_MAX_DOCUMENT_CHARS = 200_000  # longer documents are searched in their first part only


def identifiers(text: str) -> frozenset[str]:
    return frozenset(word for word in _IDENTIFIER.findall(text) if word.lower() not in _STOP_WORDS)


@lru_cache(maxsize=64)
def _windows(text: str, window_lines: int, stride: int) -> tuple[tuple[int, frozenset[str]], ...]:
    """(first line, identifiers) of each window of a document.

    Other open documents change less often than the cursor moves: the cache keeps their
    windows from one keystroke to the next.
    """
    lines = [identifiers(line) for line in text[:_MAX_DOCUMENT_CHARS].splitlines()]
    last_start = max(1, len(lines) - window_lines + stride)
    return tuple(
        (start, frozenset().union(*lines[start : start + window_lines]))
        for start in range(0, last_start, stride)
    )


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def cursor_window(text: str, offset: int, window_lines: int = 12) -> str:
    """The lines just above the cursor, its own line up to the cursor included."""
    start = offset
    for _ in range(window_lines):
        start = text.rfind("\n", 0, start)
        if start == -1:
            return text[:offset]
    return text[start + 1 : offset]


def _family(language_id: str) -> str:
    spec = language_for(language_id)
    return spec.family if spec is not None else language_id.lower()


def _same_family(a: str, b: str) -> bool:
    return _family(a) == _family(b)


def _normalized_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def already_in(snippet: str, prompt_text: str, share: float = 0.8) -> bool:
    """Whether most of the snippet's lines already appear in the prompt."""
    lines = _normalized_lines(snippet)
    if not lines:
        return True
    present = _normalized_lines(prompt_text)
    return len(lines & present) >= share * len(lines)


def related_snippets(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    *,
    window_lines: int = 12,  # about 120 tokens: room for two or three in a 1,024-token prompt
    max_snippets: int = 4,
    min_score: float = 0.1,
    exclude_text: str = "",
) -> list[Snippet]:
    """Windows of other open documents most similar to the code above the cursor, best first.

    Skips the current document, documents of another language family, windows whose lines
    mostly appear in `exclude_text` already (the prompt's own prefix and suffix), and windows
    overlapping a better one from the same document.
    """
    query = identifiers(cursor_window(document.text, offset, window_lines))
    if not query:
        return []
    stride = max(1, window_lines // 2)
    candidates: list[Snippet] = []
    for other in open_documents:
        if other.uri == document.uri or not _same_family(other.language_id, document.language_id):
            continue
        scored = sorted(
            (
                (jaccard(query, words), start)
                for start, words in _windows(other.text, window_lines, stride)
            ),
            key=lambda pair: -pair[0],
        )
        lines = other.text.splitlines(keepends=True)
        chosen: list[Snippet] = []
        for score, start in scored:
            if score < min_score or len(chosen) >= max_snippets:
                break
            if any(abs(start - c.start_line) < window_lines for c in chosen):
                continue
            text = "".join(lines[start : start + window_lines])
            if not text.endswith("\n"):
                text += "\n"
            if exclude_text and already_in(text, exclude_text):
                continue
            chosen.append(Snippet(display_path(other.path), text, score, start))
        candidates.extend(chosen)
    candidates.sort(key=lambda s: -s.score)
    return candidates[:max_snippets]
