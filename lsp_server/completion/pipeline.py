"""One completion, from document and cursor to the text the editor shows.

A linear pipeline over a context built once (DESIGN.md, llm-ls's get_completions):

    context → typing-ahead → should-complete → route → pattern cache → retrieval → prompt
            → mixing sources → exact cache → generate → post-process → store → answer

Each step lives in its own module and is called once; a step that ends the request says so by
its answer (a typing-ahead rest, a cache hit, an empty post-processed text). The LSP handlers for
inline and classic completion and `flashcode complete` all call `CompletionService.suggest`.

An empty answer carries the reason it is empty (EMPTY_REASONS, or the name of the post-processing
rule that emptied it), counted in CompletionStats for flashcode/stats and `flashcode eval repo`.
Every request, cancelled ones too, ends in a CompletionOutcome (outcome.py) on the `finished`
signal: the usage report (lsp_server/usage) counts those, and acceptances from `accepted_ids`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from inference.ngram import NgramSource, Without
from inference.scheduler import GenerationRequest, GenerationResult
from lsp_server.backends.engine import GenerationEngine
from lsp_server.backends.local import ModelManager
from lsp_server.backends.remote import RemoteEngine
from lsp_server.completion.cache import CacheState
from lsp_server.completion.context import CompletionContext, build_context
from lsp_server.completion.exact_step import exact_lookup
from lsp_server.completion.mixing_step import MixingSources, MixingTokenizer
from lsp_server.completion.outcome import CompletionOutcome, cancelled_outcome, outcome_of
from lsp_server.completion.pattern_step import pattern_hit
from lsp_server.completion.postprocess_step import shown_text_traced, shown_text_with_reason
from lsp_server.completion.prompt_step import fit_prompt, generation_request
from lsp_server.completion.retrieval_step import RetrievalStep
from lsp_server.completion.routing import Route, choose_route
from lsp_server.completion.store_step import store_answer
from lsp_server.events import Signal
from lsp_server.settings import Settings
from lsp_server.workspace.index import WorkspaceIndex
from prompts.budget import CompletionPrompt
from prompts.context import Document, completable_mid_line, cursor_line
from prompts.typeahead import ShownSuggestion, remaining_suggestion

log = logging.getLogger(__name__)

# Why an answer is empty, besides a post-processing rule's name: the model is not loaded yet; the
# code after the cursor rules out a completion (completable_mid_line); the exact cache's stored
# answer, or the model's own, was blank before any rule ran; the remote server failed (the user
# has been told by the backend).
EMPTY_REASONS = ("not-ready", "mid-line-filter", "cache-empty", "model-empty", "backend-error")


@dataclass(frozen=True)
class Suggestion:
    id: str
    text: str
    source: str  # "typeahead" | "cache" | "model"
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
    empty_by_reason: dict[str, int] = field(default_factory=dict)
    # answers a post-processing rule changed (shortened, cut, re-indented) but did not empty
    changed_by_rule: dict[str, int] = field(default_factory=dict)
    last_empty_reason: str = ""  # of the latest empty answer; "" before the first
    last_outcome: CompletionOutcome | None = None  # of the request that just ended


class CompletionService:
    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self.stats = CompletionStats()
        self.cache = CacheState()  # opened by apply_settings
        # After every request that ends, cancelled ones included (stats.last_outcome says how).
        self.finished: Signal[CompletionStats] = Signal()
        self.accepted_ids: Signal[str] = Signal()  # a shown suggestion the user accepted
        self.problems: Signal[str] = Signal()  # something the user should fix, said once
        self._reported: set[str] = set()
        self._shown: dict[str, ShownSuggestion] = {}  # per document URI
        self.mixing = MixingSources()
        # The workspace's token segments (lsp_server/workspace/), set by the LSP edge once the
        # model's tokenizer is known; None when switched off or not started yet.
        self.workspace_index: WorkspaceIndex | None = None
        # Snippets of the workspace's files for the prompt; without a workspace index it reads
        # the workspace folders itself (retrieval_step.FolderFiles).
        self.retrieval = RetrievalStep()

    def apply_settings(self, settings: Settings) -> None:
        """Called when the settings change, never per request."""
        self.cache.configure(settings.cache)
        self.retrieval.warm(settings, self.workspace_index)
        self._reported.clear()  # new settings: a problem that remains is worth saying again

    def close(self) -> None:
        self.cache.close()

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)
        self.cache.forget(uri)

    def accepted(self, suggestion_id: str) -> bool:
        for shown in self._shown.values():
            if shown.id == suggestion_id:
                self.stats.accepted += 1
                self.accepted_ids.emit(suggestion_id)
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
        context = build_context(document, offset, open_documents, settings, invoked)
        try:
            text, source, shown_id, generation = await self._run(context, settings)
        except asyncio.CancelledError:  # $/cancelRequest: the engine drops it at its next step
            self.stats.cancelled += 1
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.stats.last_outcome = cancelled_outcome(context.language, elapsed_ms)
            self.finished.emit(self.stats)
            raise
        self.stats.last_latency_ms = (time.perf_counter() - started) * 1000
        suggestion = self._answer(context, text, source, shown_id)
        self.stats.last_outcome = outcome_of(
            context.language,
            source,
            generation,
            self.stats.last_latency_ms,
            suggestion.id if suggestion is not None else "",
        )
        self.finished.emit(self.stats)
        return suggestion

    async def _run(
        self, context: CompletionContext, settings: Settings
    ) -> tuple[str, str, str | None, GenerationResult | None]:
        """(text, source, id of the suggestion it continues, the model's result when it ran); an
        empty text shows nothing, and its source is then the reason why."""
        shown = self._shown.get(context.document.uri)
        if shown is not None:
            rest = remaining_suggestion(shown, context.prefix, context.suffix)
            if rest is not None:
                return rest, "typeahead", shown.id, None

        if not context.invoked and not completable_mid_line(context.suffix):
            return "", "mid-line-filter", None, None

        # Without a model (loading, or it failed to load) the pattern cache still answers.
        router = self.models.flash if self.models.ready else None
        route = choose_route(router, context, settings) if router is not None else None
        if route is not None and route.problem is not None and route.problem not in self._reported:
            self._reported.add(route.problem)
            self.problems.emit(route.problem)
        pattern = pattern_hit(self.cache, context)
        if pattern is not None:
            return pattern.text, "cache", None, None
        if route is None:
            return "", "not-ready", None, None

        prompt = self._prompt(context, route, settings)
        self.retrieval.stats.last_snippets = list(prompt.snippet_sources)  # for flashcode/stats
        request = generation_request(prompt, route, settings)
        # Only a decoder in this process can be mixed into; a remote server decodes alone.
        tokenizer = route.engine.tokenizer
        if (
            settings.workspace.mixing
            and not isinstance(route.engine, RemoteEngine)
            and isinstance(tokenizer, MixingTokenizer)
        ):
            request = self._with_mixing(context, prompt, request, tokenizer, settings)
        lookup = exact_lookup(self.cache, context, prompt, request, route.engine.model.fingerprint)
        if lookup.hit is not None:
            text, rule = shown_text_with_reason(
                lookup.hit.text, context.prefix, context.suffix, prompt
            )
            source = "cache" if text else _empty_reason(lookup.hit.text, rule, "cache")
            return text, source, None, None

        result = await route.engine.generate(request)
        if result.finish_reason == "error":
            return "", "backend-error", None, result
        trace = shown_text_traced(result.text, context.prefix, context.suffix, prompt)
        text, rule = trace.text, trace.emptied_by
        for name in trace.changed_by if text else ():
            self.stats.changed_by_rule[name] = self.stats.changed_by_rule.get(name, 0) + 1
        store_answer(self.cache, context, lookup, result.text, text, result.finish_reason)
        log.info(
            "completion %s:%d prompt=%d reused=%d new=%d finish=%s %.0fms",
            context.document.uri.rsplit("/", 1)[-1],
            context.offset,
            result.prompt_tokens,
            result.reused_prompt_tokens,
            len(result.token_ids),
            result.finish_reason,
            result.total_ms,
        )
        log.debug("raw answer %r shown as %r (emptied by %s)", result.text, text, rule)
        return text, "model" if text else _empty_reason(result.text, rule, "model"), None, result

    def _prompt(
        self, context: CompletionContext, route: Route, settings: Settings
    ) -> CompletionPrompt:
        retrieved = self.retrieval.snippets(context, settings, self.workspace_index)
        return fit_prompt(context, route, settings, retrieved)

    def likely_prompt(
        self,
        document: Document,
        offset: int,
        open_documents: Sequence[Document],
        settings: Settings,
    ) -> tuple[GenerationEngine, tuple[int, ...]] | None:
        """The engine and prompt ids a completion at `offset` would run (for a warm prefill:
        lsp_server/completion/warm.py), or None without a model."""
        if not self.models.ready or self.models.flash is None:
            return None
        context = build_context(document, offset, open_documents, settings)
        route = choose_route(self.models.flash, context, settings)
        return route.engine, self._prompt(context, route, settings).token_ids

    def _with_mixing(
        self,
        context: CompletionContext,
        prompt: CompletionPrompt,
        request: GenerationRequest,
        tokenizer: MixingTokenizer,
        settings: Settings,
    ) -> GenerationRequest:
        index = self.workspace_index if settings.workspace.enabled else None
        workspace: tuple[NgramSource, ...] = ()
        if index is not None:
            # The index holds this buffer whole; the buffer's own source is split at the cursor,
            # so the index must not also say that the code before the cursor goes on with the
            # code after it.
            own = index.span_of(path_of_uri(context.document.uri))
            workspace = tuple(
                Without(segment, own[1], own[2])
                if own is not None and segment is own[0]
                else segment
                for segment in index.sources()
            )
        sources, before = self.mixing.for_request(context, prompt, tokenizer, workspace)
        return replace(request, ngram_sources=sources, ngram_context=before)

    def _answer(
        self, context: CompletionContext, text: str, source: str, shown_id: str | None
    ) -> Suggestion | None:
        if not text:
            self.stats.empty += 1
            self.stats.empty_by_reason[source] = self.stats.empty_by_reason.get(source, 0) + 1
            self.stats.last_empty_reason = source
            return None
        suggestion_id = shown_id or uuid.uuid4().hex[:12]
        self._shown[context.document.uri] = ShownSuggestion(
            prefix=context.prefix, suffix=context.suffix, text=text, id=suggestion_id
        )
        self.stats.answered += 1
        self.stats.by_source[source] = self.stats.by_source.get(source, 0) + 1
        return Suggestion(
            id=suggestion_id, text=text, source=source, line_prefix=cursor_line(context.prefix)
        )


def path_of_uri(uri: str) -> Path:
    """The file system path of a file:// URI (other schemes give a path that is never indexed)."""
    parsed = urlparse(uri)
    return Path(url2pathname(unquote(parsed.path))) if parsed.scheme == "file" else Path(uri)


def _empty_reason(raw: str, rule: str | None, layer: str) -> str:
    """Why a raw answer of `layer` ("cache" or "model") showed nothing: it was blank, or `rule`
    emptied it."""
    if not raw.strip() or rule is None:
        return f"{layer}-empty"
    return rule
