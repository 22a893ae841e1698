"""What one completion request came to, as facts that can be counted: where its answer came from,
whether anything was shown, how long it took and what the model spent on it.

The pipeline announces one `CompletionOutcome` per request (CompletionStats.last_outcome, on its
`finished` signal), so that usage is counted by a listener (lsp_server.usage) rather than by the
pipeline itself. An outcome never holds code text: a language name, a layer, counts and times.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.scheduler import GenerationResult

# The layers that answer a request: typing-ahead, the cache (pattern or exact), the model.
ANSWER_LAYERS = ("model", "cache", "typeahead")
# Besides them, a request ends with no layer answering ("none": the model is not loaded yet, the
# code after the cursor rules a completion out) or is cancelled by the editor.
LAYERS = (*ANSWER_LAYERS, "none", "cancelled")
# Reasons a request ended before any layer answered (the pipeline's EMPTY_REASONS that say so).
_UNANSWERED = ("not-ready", "mid-line-filter")


@dataclass(frozen=True)
class CompletionOutcome:
    language: str  # the registry's name, or the editor's language id; "" when it sent none
    layer: str  # one of LAYERS
    shown: bool  # a non-empty suggestion went back to the editor
    latency_ms: float  # request to answer (to the cancellation, for a cancelled one)
    suggestion_id: str = ""  # of the suggestion shown; "" when none was
    generated_tokens: int = 0  # by the model, for this request
    prompt_tokens: int = 0  # of the model's prompt, reused ones included
    reused_prompt_tokens: int = 0  # whose KV came from the prefix cache instead of a prefill


def layer_of(source: str, generation: GenerationResult | None) -> str:
    """The layer that answered, from the pipeline's source (a layer, or why the answer is empty)
    and the model's result when it ran. A post-processing rule that emptied an answer names
    itself, not the layer: the model's if it ran, else the exact cache's."""
    if generation is not None:
        return "model"
    if source in ANSWER_LAYERS:
        return source
    if source in _UNANSWERED:
        return "none"
    return "cache"  # "cache-empty", or a rule that emptied a cached answer


def outcome_of(
    language: str,
    source: str,
    generation: GenerationResult | None,
    latency_ms: float,
    suggestion_id: str,
) -> CompletionOutcome:
    return CompletionOutcome(
        language=language,
        layer=layer_of(source, generation),
        shown=bool(suggestion_id),
        latency_ms=latency_ms,
        suggestion_id=suggestion_id,
        generated_tokens=len(generation.token_ids) if generation is not None else 0,
        prompt_tokens=generation.prompt_tokens if generation is not None else 0,
        reused_prompt_tokens=generation.reused_prompt_tokens if generation is not None else 0,
    )


def cancelled_outcome(language: str, latency_ms: float) -> CompletionOutcome:
    return CompletionOutcome(
        language=language, layer="cancelled", shown=False, latency_ms=latency_ms
    )
