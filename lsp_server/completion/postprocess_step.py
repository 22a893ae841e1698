"""The post-processing step: a raw answer (the model's, or the exact layer's) as the editor shows
it for the cursor as it is now."""

from __future__ import annotations

from prompts.budget import CompletionPrompt
from prompts.postprocess import PostprocessContext, Trace, postprocess_traced


def shown_text(raw: str, prefix: str, suffix: str, prompt: CompletionPrompt) -> str:
    """The raw answer, post-processed for the cursor between `prefix` and `suffix`."""
    return shown_text_with_reason(raw, prefix, suffix, prompt)[0]


def shown_text_with_reason(
    raw: str, prefix: str, suffix: str, prompt: CompletionPrompt
) -> tuple[str, str | None]:
    """As `shown_text`, with the name of the post-processing rule that emptied the answer (None
    when something is shown, or when `raw` was empty already)."""
    trace = shown_text_traced(raw, prefix, suffix, prompt)
    return trace.text, trace.emptied_by


def shown_text_traced(raw: str, prefix: str, suffix: str, prompt: CompletionPrompt) -> Trace:
    """As `shown_text`, with every post-processing rule that changed or emptied the answer."""
    return postprocess_traced(
        raw,
        PostprocessContext(
            prefix=prefix,
            suffix=suffix,
            multiline=prompt.multiline,
            language=prompt.language,
            stop_strings=prompt.stop_strings,
            healed=prompt.healed,
        ),
    )
