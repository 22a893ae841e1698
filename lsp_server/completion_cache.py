"""The cache step of an inline completion, between the prompt and the model.

First a CRUD pattern hit, asked before the prompt is built: the code before the cursor is an
instance of a pattern already completed for another entity, and the stored completion, written
out for this entity, passed the checks of prompts.patterns.complete. Then an exact hit (same
model, settings and prompt ids): the model's own earlier answer, post-processed for the cursor as
it is now. Otherwise the model runs and its answer is stored for both layers.

Before each lookup the open documents are mined for patterns (only the parts that changed), so
code the user wrote in one class teaches the next one. Files that look secret are never read for
the cache, looked up or stored, and a prompt that quotes one is not stored either.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec

from inference.cache import CompletionCache, cache_dir, exact_key, excluded
from lsp_server.model_step import shown_text
from lsp_server.settings import DEFAULT_SECRET_GLOBS, CacheSettings
from prompts.context import Document
from prompts.languages import SUPPORTED_LANGUAGES, language_of
from prompts.pattern_checks import complete
from prompts.patterns import (
    PatternExample,
    PatternLearner,
    example_from_completion,
    site_at,
)

if TYPE_CHECKING:
    from inference.scheduler import GenerationRequest
    from prompts.budget import CompletionPrompt

log = logging.getLogger(__name__)

# The model's answer is reproducible only when it was not cut short by time or cancellation.
_CACHEABLE_FINISH = frozenset({"stop", "length"})
P = ParamSpec("P")


@dataclass
class CacheTicket:
    """The outcome of one lookup: a hit's text, or what to store once the model has answered."""

    text: str | None = None  # the completion to show on a hit
    layer: str | None = None  # "exact" | "pattern" on a hit
    latency_ms: float = 0.0
    _store: Callable[[str, str, str], None] | None = field(default=None, repr=False)

    def store(self, raw: str, shown: str, finish_reason: str) -> None:
        """Keep the model's answer: `raw` for the exact layer, `shown` as a pattern example."""
        if self._store is not None:
            self._store(raw, shown, finish_reason)


def _miss_on_error(lookup: Callable[P, CacheTicket]) -> Callable[P, CacheTicket]:
    """A cache fault costs a model call, never the completion."""

    @functools.wraps(lookup)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> CacheTicket:
        try:
            return lookup(*args, **kwargs)
        except Exception:
            log.exception("completion cache lookup failed; asking the model")
            return CacheTicket()

    return guarded


class CompletionCacheStep:
    """Owns the disk cache (opened from settings) and the pattern learner."""

    def __init__(self, on_warning: Callable[[str], None] | None = None) -> None:
        self.on_warning = on_warning
        self.cache: CompletionCache | None = None
        self.enabled = False
        self.learner = PatternLearner()
        self._opened_for: tuple[str, int] | None = None

    # -- settings ------------------------------------------------------------------------------
    def configure(self, settings: CacheSettings) -> None:
        """Open, reopen or close the cache so that it follows the settings."""
        self.enabled = settings.enabled
        if not settings.enabled:
            self.close()
            return
        target = (str(cache_dir(settings.directory)), settings.max_size_mb)
        if self.cache is not None and target == self._opened_for:
            return
        self.close()
        self.cache = CompletionCache(target[0], target[1], on_warning=self._warn)
        self._opened_for = target
        log.info("completion cache at %s (%d MB)", target[0], target[1])

    def _warn(self, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(message)

    def forget(self, uri: str) -> None:
        self.learner.forget(uri)

    def learn_examples(self, examples: Sequence[PatternExample]) -> None:
        """Store examples mined from the user's own code (open documents, workspace files)."""
        if self.cache is not None:
            self.cache.add_patterns(((e.key, e.lines, e.entity) for e in examples), "workspace")

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.cache = None
        self._opened_for = None

    def stats(self) -> dict[str, Any]:
        if self.cache is None:
            return {"enabled": False}
        return {"enabled": True, **self.cache.stats()}

    # -- one completion ------------------------------------------------------------------------
    @_miss_on_error
    def lookup_pattern(
        self,
        document: Document,
        offset: int,
        open_documents: Sequence[Document],
        multiline: bool,
        settings: CacheSettings,
    ) -> CacheTicket:
        """A pattern hit, asked before any prompt is built: it needs no token ids, and building
        the prompt is most of the time a hit would otherwise cost. Never raises."""
        started = time.perf_counter()
        self.configure(settings)
        cache = self.cache
        globs = (*DEFAULT_SECRET_GLOBS, *settings.exclude_globs)
        language = _grammar(document)
        if cache is None or language is None or _secret(document, globs):
            return CacheTicket()
        others = [d for d in open_documents if not _secret(d, globs)]
        self._learn(document, offset, others, language)
        site = site_at(document.text, offset, language)
        stored = cache.get_patterns(site.key) if site is not None else []
        if site is not None and stored:
            candidates = [
                PatternExample(site.key, lines, origin, written_by_user=source == "workspace")
                for lines, origin, source in stored
            ]
            instance = complete(
                site,
                candidates,
                text=document.text,
                offset=offset,
                multiline=multiline,
                other_texts=[d.text for d in others],
            )
            if instance is not None:
                return self._hit(cache, "pattern", instance, started)
            cache.record_rejected(len(candidates))
        cache.record("pattern", False)
        return CacheTicket()

    @_miss_on_error
    def lookup(
        self,
        document: Document,
        offset: int,
        open_documents: Sequence[Document],
        prompt: CompletionPrompt,
        request: GenerationRequest,
        fingerprint: str,
        settings: CacheSettings,
    ) -> CacheTicket:
        """An exact hit, or a miss ticket whose `store` keeps the model's answer (for both
        layers). Asked after `lookup_pattern` missed. Never raises."""
        started = time.perf_counter()
        self.configure(settings)
        cache = self.cache
        globs = (*DEFAULT_SECRET_GLOBS, *settings.exclude_globs)
        if cache is None or _secret(document, globs):
            return CacheTicket()
        language = _grammar(document)
        key = exact_key(fingerprint, request)
        raw = cache.get_exact(key) if key else None
        if raw is not None:
            text = shown_text(raw, document.text, offset, prompt)
            return self._hit(cache, "exact", text, started)
        cache.record("exact", False)
        # A snippet of a secret file in the prompt would end up in the stored answer.
        secrets = [d for d in open_documents if _secret(d, globs)]
        if secrets and _quotes_any(prompt.snippets, secrets):
            return CacheTicket()

        def store(raw: str, shown: str, finish_reason: str) -> None:
            try:
                if key and finish_reason in _CACHEABLE_FINISH:
                    cache.put_exact(key, raw)
                if shown and language is not None:
                    example = example_from_completion(document.text, offset, shown, language)
                    if example is not None:
                        cache.add_patterns([(example.key, example.lines, example.entity)], "model")
            except Exception:  # the completion is already on its way: only the cache loses
                log.exception("storing a completion in the cache failed")

        return CacheTicket(_store=store)

    def _hit(self, cache: CompletionCache, layer: str, text: str, started: float) -> CacheTicket:
        latency = (time.perf_counter() - started) * 1000
        cache.record(layer, True, latency)
        return CacheTicket(text=text or None, layer=layer, latency_ms=latency)

    def _learn(
        self,
        document: Document,
        offset: int,
        others: Sequence[Document],
        language: str,
    ) -> None:
        examples = []
        for other in others:
            other_language = _grammar(other)
            if other_language is not None:
                examples += self.learner.observe(other.uri, other.text, other_language)
        cursor_line = document.text.count("\n", 0, offset)
        examples += self.learner.observe(document.uri, document.text, language, cursor_line)
        if examples:
            self.learn_examples(examples)


def _secret(document: Document, globs: Sequence[str]) -> bool:
    return excluded(document.path, globs) or excluded(document.uri, globs)


def _grammar(document: Document) -> str | None:
    """The tree-sitter grammar of a document: patterns are checked by parsing, so none without."""
    language = language_of(document.language_id, document.path)
    return language if language in SUPPORTED_LANGUAGES else None


def _quotes_any(snippets: Sequence[str], documents: Sequence[Document]) -> bool:
    """Whether a prompt snippet carries a line of one of the documents (snippets are rendered
    as comments, so whole snippets never match the document text; their lines do)."""
    for document in documents:
        for line in document.text.splitlines():
            line = line.strip()
            if len(line) >= 6 and any(line in snippet for snippet in snippets):
                return True
    return False
