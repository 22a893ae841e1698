"""The exact step: the model's own earlier answer to the same prompt, asked once the prompt's ids
are known (same model, same ids, same generation settings).

A miss says whether the model's answer may be stored afterwards (store_step): never for a
document that looks secret, and never when a snippet of a secret open document made it into the
prompt, since the stored answer could quote it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from inference.cache.keys import exact_key
from inference.scheduler import GenerationRequest
from lsp_server.completion.cache import CacheHit, CacheState, miss_on_error
from lsp_server.completion.context import CompletionContext
from prompts.budget import CompletionPrompt
from prompts.context import Document


@dataclass(frozen=True)
class ExactLookup:
    hit: CacheHit | None = None  # the raw answer stored for this prompt
    storable: bool = False  # the model's answer may be stored for both layers
    key: str | None = None  # the exact layer's key; None when the request has none


NOT_STORABLE = ExactLookup()


@miss_on_error(NOT_STORABLE)
def exact_lookup(
    state: CacheState,
    context: CompletionContext,
    prompt: CompletionPrompt,
    request: GenerationRequest,
    fingerprint: str,
) -> ExactLookup:
    started = time.perf_counter()
    cache = state.cache
    if cache is None or context.secret:
        return NOT_STORABLE
    key = exact_key(fingerprint, request)
    raw = cache.get_exact(key) if key else None
    if raw is not None:
        cache.record("exact", True, (time.perf_counter() - started) * 1000)
        return ExactLookup(hit=CacheHit("exact", raw), key=key)
    cache.record("exact", False)
    secrets = context.secret_documents
    if secrets and _quotes_any(prompt.snippets, secrets):
        return NOT_STORABLE
    return ExactLookup(storable=True, key=key)


def _quotes_any(snippets: Sequence[str], documents: Sequence[Document]) -> bool:
    """Whether a prompt snippet carries a line of one of the documents (snippets are rendered
    as comments, so whole snippets never match the document text; their lines do)."""
    for document in documents:
        for line in document.text.splitlines():
            line = line.strip()
            if len(line) >= 6 and any(line in snippet for snippet in snippets):
                return True
    return False
