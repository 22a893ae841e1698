"""The pattern step: a CRUD pattern hit, asked before any prompt is built.

The code before the cursor is an instance of a pattern already completed for another entity, and
the stored completion, written out for this entity, passes the checks of prompts.pattern_checks. It
needs no token ids, and building the prompt is most of what a hit would otherwise cost. Before
the lookup the open documents are mined for patterns (only the parts that changed), so code the
user wrote in one class teaches the next one. Documents that look secret are never read.
"""

from __future__ import annotations

import time

from lsp_server.completion.cache import CacheHit, CacheState, miss_on_error
from lsp_server.completion.context import CompletionContext
from prompts.pattern_checks import complete
from prompts.patterns import PatternExample, site_at


@miss_on_error(None)
def pattern_hit(state: CacheState, context: CompletionContext) -> CacheHit | None:
    started = time.perf_counter()
    cache = state.cache
    if cache is None or context.grammar is None or context.secret:
        return None
    _learn(state, context)
    site = site_at(context.document.text, context.offset, context.grammar)
    stored = cache.get_patterns(site.key) if site is not None else []
    if site is not None and stored:
        candidates = [
            PatternExample(site.key, lines, origin, written_by_user=source == "workspace")
            for lines, origin, source in stored
        ]
        instance = complete(
            site,
            candidates,
            text=context.document.text,
            offset=context.offset,
            multiline=context.multiline,
            other_texts=[d.text for d in context.public_documents],
        )
        if instance is not None:
            cache.record("pattern", True, (time.perf_counter() - started) * 1000)
            return CacheHit("pattern", instance)
        cache.record_rejected(len(candidates))
    cache.record("pattern", False)
    return None


def _learn(state: CacheState, context: CompletionContext) -> None:
    examples: list[PatternExample] = []
    for other, grammar in context.learnable:
        examples += state.learner.observe(other.uri, other.text, grammar)
    assert context.grammar is not None
    cursor_line = context.document.text.count("\n", 0, context.offset)
    examples += state.learner.observe(
        context.document.uri, context.document.text, context.grammar, cursor_line
    )
    if examples:
        state.learn_examples(examples)
