"""The facts of one completion request, computed once before any step runs.

Every step reads the same CompletionContext: the language is resolved once, the text is split at
the cursor once, the syntax tree is asked once for the multi-line decision and the complexity of
the enclosing scope, and the secret-file globs are matched once. Computing the scope before the
typing-ahead step costs one incremental parse on a keystroke that typing-ahead answers; in
exchange the route (which needs the complexity) is known before the prompt is fitted for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inference.cache.keys import excluded
from lsp_server.settings import Settings
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from prompts.context import Document
from prompts.languages import language_of
from prompts.multiline import wants_multiline
from prompts.scope import scope_at


@dataclass(frozen=True)
class CompletionContext:
    document: Document
    offset: int  # str index of the cursor in document.text
    prefix: str  # document.text[:offset]
    suffix: str  # document.text[offset:]
    open_documents: tuple[Document, ...]  # the other open documents, secret ones included
    public_documents: tuple[Document, ...]  # those the cache may read: none that look secret
    secret_documents: tuple[Document, ...]  # the rest
    learnable: tuple[tuple[Document, str], ...]  # public documents with a grammar, and it
    invoked: bool  # the user asked explicitly, rather than by typing
    language: str  # the registry's name for it, or the editor's language id when it has none
    grammar: str | None  # the tree-sitter grammar; None when the language has none
    multiline: bool  # a block answer rather than the rest of one line
    complexity: int  # of the scope around the cursor; 0 without a grammar
    secret: bool  # the document looks like a secret: never cached, never learned from


def is_secret(document: Document, globs: Sequence[str]) -> bool:
    return excluded(document.path, globs) or excluded(document.uri, globs)


def build_context(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    settings: Settings,
    invoked: bool = False,
) -> CompletionContext:
    """The context of a cursor at `offset` (a str index inside document.text)."""
    assert 0 <= offset <= len(document.text), "offset must lie inside the document"
    grammar = language_of(document.language_id, document.path)  # a grammar name, or None
    language = grammar or document.language_id
    globs = (*DEFAULT_SECRET_GLOBS, *settings.cache.exclude_globs)
    hidden = [is_secret(d, globs) for d in open_documents]
    public = tuple(d for d, secret in zip(open_documents, hidden, strict=True) if not secret)
    learnable = tuple(
        (d, g) for d in public if (g := language_of(d.language_id, d.path)) is not None
    )
    return CompletionContext(
        document=document,
        offset=offset,
        prefix=document.text[:offset],
        suffix=document.text[offset:],
        open_documents=tuple(open_documents),
        public_documents=public,
        secret_documents=tuple(
            d for d, secret in zip(open_documents, hidden, strict=True) if secret
        ),
        learnable=learnable,
        invoked=invoked,
        language=language,
        grammar=grammar,
        multiline=wants_multiline(document.text, offset, language),
        complexity=scope_at(document.text, offset, grammar).complexity if grammar else 0,
        secret=is_secret(document, globs),
    )
