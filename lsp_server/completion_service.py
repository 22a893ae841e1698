"""One completion, from document and cursor to the text the editor shows.

typing-ahead → prompt → cache → model → post-processing, as in DESIGN.md. The LSP handlers for
inline completion and classic completion, and `flashcode complete`, all call `suggest`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from lsp_server.completion_cache import CompletionCacheStep
from lsp_server.model_step import model_prompt, model_request, shown_text
from lsp_server.models import ModelManager
from lsp_server.settings import Settings
from prompts.context import Document, completable_mid_line, cursor_line
from prompts.fim import select_template
from prompts.languages import SUPPORTED_LANGUAGES, language_of
from prompts.multiline import wants_multiline
from prompts.scope import scope_at
from prompts.typeahead import ShownSuggestion, remaining_suggestion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    id: str
    text: str
    source: str  # "typeahead" | "cache" | "model"
    latency_ms: float
    line_prefix: str = ""  # the cursor's line before the cursor (what a completion list filters on)


@dataclass
class CompletionStats:
    requests: int = 0
    answered: int = 0
    empty: int = 0
    cancelled: int = 0
    accepted: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    last_latency_ms: float = 0.0


class CompletionService:
    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self.stats = CompletionStats()
        self._shown: dict[str, ShownSuggestion] = {}  # per document URI
        self.cache = CompletionCacheStep()  # opened from settings.cache at the first use

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)
        self.cache.forget(uri)

    def accepted(self, suggestion_id: str) -> bool:
        for shown in self._shown.values():
            if shown.id == suggestion_id:
                self.stats.accepted += 1
                return True
        return False

    async def suggest(
        self,
        document: Document,
        offset: int,
        open_documents: Sequence[Document],
        settings: Settings,
        invoked: bool = False,
    ) -> Suggestion | None:
        """A suggestion for the cursor at `offset` (a str index), or None for nothing to show.
        `invoked`: the user asked for one explicitly, so code after the cursor does not stop it."""
        started = time.perf_counter()
        self.stats.requests += 1
        prefix, suffix = document.text[:offset], document.text[offset:]

        shown = self._shown.get(document.uri)
        if shown is not None:
            rest = remaining_suggestion(shown, prefix, suffix)
            if rest is not None:
                return self._answer(
                    document.uri, prefix, suffix, rest, "typeahead", started, shown.id
                )

        router = self.models.flash
        if router is None or not self.models.ready:
            self.stats.empty += 1
            return None
        if not invoked and not completable_mid_line(suffix):
            self.stats.empty += 1
            return None
        engine = router.primary
        language = language_of(document.language_id, document.path) or document.language_id
        multiline = wants_multiline(document.text, offset, language)
        pattern = self.cache.lookup_pattern(
            document, offset, open_documents, multiline, settings.cache
        )
        if pattern.layer is not None:
            return self._cache_answer(document.uri, prefix, suffix, pattern.text, started)
        template = select_template(engine.tokenizer.special_tokens, settings.fim_template or None)
        prompt = model_prompt(
            document,
            offset,
            open_documents,
            engine,
            template,
            settings.context_budget,
            settings.max_new_tokens,
            multiline,
        )
        if language in SUPPORTED_LANGUAGES:
            complexity = scope_at(document.text, offset, language).complexity
            engine = router.pick(complexity, settings.int8_complexity)
        request = model_request(
            prompt, engine, settings.max_new_tokens, settings.deadline_ms / 1000
        )
        ticket = self.cache.lookup(
            document,
            offset,
            open_documents,
            prompt,
            request,
            engine.model.fingerprint,
            settings.cache,
        )
        if ticket.layer is not None:
            return self._cache_answer(document.uri, prefix, suffix, ticket.text, started)
        try:
            result = await engine.generate(request)
        except asyncio.CancelledError:  # $/cancelRequest: the engine drops it at its next step
            self.stats.cancelled += 1
            raise
        text = shown_text(result.text, document.text, offset, prompt)
        ticket.store(result.text, text, result.finish_reason)
        log.info(
            "completion %s:%d prompt=%d reused=%d new=%d finish=%s %.0fms",
            document.uri.rsplit("/", 1)[-1],
            offset,
            result.prompt_tokens,
            result.reused_prompt_tokens,
            len(result.token_ids),
            result.finish_reason,
            result.total_ms,
        )
        if not text:
            self.stats.empty += 1
            self.stats.last_latency_ms = (time.perf_counter() - started) * 1000
            return None
        return self._answer(document.uri, prefix, suffix, text, "model", started)

    def _cache_answer(
        self, uri: str, prefix: str, suffix: str, text: str | None, started: float
    ) -> Suggestion | None:
        if not text:
            self.stats.empty += 1
            return None
        return self._answer(uri, prefix, suffix, text, "cache", started)

    def _answer(
        self,
        uri: str,
        prefix: str,
        suffix: str,
        text: str,
        source: str,
        started: float,
        suggestion_id: str | None = None,
    ) -> Suggestion:
        suggestion_id = suggestion_id or uuid.uuid4().hex[:12]
        self._shown[uri] = ShownSuggestion(
            prefix=prefix, suffix=suffix, text=text, id=suggestion_id
        )
        latency = (time.perf_counter() - started) * 1000
        self.stats.answered += 1
        self.stats.by_source[source] = self.stats.by_source.get(source, 0) + 1
        self.stats.last_latency_ms = latency
        return Suggestion(
            id=suggestion_id,
            text=text,
            source=source,
            latency_ms=latency,
            line_prefix=cursor_line(prefix),
        )
