"""The store step: keep the model's answer for the next request that asks the same.

The raw answer goes to the exact layer, when it was not cut short by time or cancellation (only
then would the model give it again); the shown text becomes a pattern example for the CRUD layer.
The completion is already on its way to the editor: a fault here only costs the cache.
"""

from __future__ import annotations

from lsp_server.completion.cache import CacheState, miss_on_error
from lsp_server.completion.context import CompletionContext
from lsp_server.completion.exact_step import ExactLookup
from prompts.patterns import example_from_completion

# The model's answer is reproducible only when it was not cut short by time or cancellation.
CACHEABLE_FINISH = frozenset({"stop", "length"})


@miss_on_error(None)
def store_answer(
    state: CacheState,
    context: CompletionContext,
    lookup: ExactLookup,
    raw: str,
    shown: str,
    finish_reason: str,
) -> None:
    cache = state.cache
    if cache is None or not lookup.storable:
        return
    if lookup.key and finish_reason in CACHEABLE_FINISH:
        cache.put_exact(lookup.key, raw)
    if shown and context.grammar is not None:
        example = example_from_completion(
            context.document.text, context.offset, shown, context.grammar
        )
        if example is not None:
            cache.add_patterns([(example.key, example.lines, example.entity)], "model")
