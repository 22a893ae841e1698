"""The post-processing step: a raw answer (the model's, or the exact layer's) as the editor shows
it for the cursor as it is now."""

from __future__ import annotations

from prompts.budget import CompletionPrompt
from prompts.postprocess import PostprocessContext, postprocess


def shown_text(raw: str, prefix: str, suffix: str, prompt: CompletionPrompt) -> str:
    """The raw answer, post-processed for the cursor between `prefix` and `suffix`."""
    return postprocess(
        raw,
        PostprocessContext(
            prefix=prefix,
            suffix=suffix,
            multiline=prompt.multiline,
            language=prompt.language,
            stop_strings=prompt.stop_strings,
        ),
    )
