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

from inference.cache import excluded
from lsp_server.settings import DEFAULT_SECRET_GLOBS, Settings
from prompts.context import Document
from prompts.syntax import SUPPORTED_LANGUAGES, language_of, scope_at, wants_multiline


@dataclass(frozen=True)
class CompletionContext:
    document: Document
    offset: int  # str index of the cursor in document.text
    prefix: str  # document.text[:offset]
    suffix: str  # document.text[offset:]
    open_documents: tuple[Document, ...]  # the other open documents, secret ones included
    invoked: bool  # the user asked explicitly, rather than by typing
    language: str  # the registry's name for it, or the editor's language id when it has none
    grammar: str | None  # the tree-sitter grammar; None when the language has none
    multiline: bool  # a block answer rather than the rest of one line
    complexity: int  # of the scope around the cursor; 0 without a grammar
    secret: bool  # the document looks like a secret: never cached, never learned from
    secret_globs: tuple[str, ...]  # the defaults plus the user's cache.excludeGlobs

    @property
    def public_documents(self) -> list[Document]:
        """The other open documents that may be read for the cache (none that look secret)."""
        return [d for d in self.open_documents if not is_secret(d, self.secret_globs)]

    @property
    def secret_documents(self) -> list[Document]:
        return [d for d in self.open_documents if is_secret(d, self.secret_globs)]


def is_secret(document: Document, globs: Sequence[str]) -> bool:
    return excluded(document.path, globs) or excluded(document.uri, globs)


def grammar_of(document: Document) -> str | None:
    """The tree-sitter grammar of a document, or None when no grammar parses it."""
    language = language_of(document.language_id, document.path)
    return language if language in SUPPORTED_LANGUAGES else None


def build_context(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    settings: Settings,
    invoked: bool = False,
) -> CompletionContext:
    """The context of a cursor at `offset` (a str index inside document.text)."""
    assert 0 <= offset <= len(document.text), "offset must lie inside the document"
    language = language_of(document.language_id, document.path) or document.language_id
    grammar = language if language in SUPPORTED_LANGUAGES else None
    globs = (*DEFAULT_SECRET_GLOBS, *settings.cache.exclude_globs)
    return CompletionContext(
        document=document,
        offset=offset,
        prefix=document.text[:offset],
        suffix=document.text[offset:],
        open_documents=tuple(open_documents),
        invoked=invoked,
        language=language,
        grammar=grammar,
        multiline=wants_multiline(document.text, offset, language),
        complexity=scope_at(document.text, offset, grammar).complexity if grammar else 0,
        secret=is_secret(document, globs),
        secret_globs=globs,
    )
