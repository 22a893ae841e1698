"""The model's step of a completion, shared by the server and the quality evaluation: the prompt
fitted to the model's window, the request, and the answer as the editor shows it."""

from __future__ import annotations

from collections.abc import Sequence

from inference.engine import Engine
from inference.scheduler import GenerationRequest
from prompts.budget import CompletionPrompt, build_completion_prompt
from prompts.context import Document
from prompts.fim import FimTemplate
from prompts.postprocess import PostprocessContext, postprocess

# A single line rarely needs more; the cap keeps a rambling model from costing a long decode.
SINGLE_LINE_MAX_NEW_TOKENS = 48


def model_prompt(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    engine: Engine,
    template: FimTemplate,
    context_budget: int,
    max_new_tokens: int,
    multiline: bool | None = None,
) -> CompletionPrompt:
    """The prompt for the cursor, fitted so that it and the answer share the model's window."""
    budget = min(context_budget, engine.max_length - max_new_tokens - 1)
    return build_completion_prompt(
        document, offset, open_documents, engine.tokenizer, template, budget, multiline=multiline
    )


def model_request(
    prompt: CompletionPrompt,
    engine: Engine,
    max_new_tokens: int,
    deadline_s: float | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        prompt_ids=prompt.token_ids,
        max_new_tokens=max_new_tokens
        if prompt.multiline
        else min(max_new_tokens, SINGLE_LINE_MAX_NEW_TOKENS),
        stop_token_ids=prompt.stop_token_ids | engine.tokenizer.eos_token_ids,
        stop_strings=prompt.stop_strings,
        deadline_s=deadline_s,
    )


def shown_text(raw: str, text: str, offset: int, prompt: CompletionPrompt) -> str:
    """The model's raw answer, post-processed for the cursor at `offset` of `text`."""
    return postprocess(
        raw,
        PostprocessContext(
            prefix=text[:offset],
            suffix=text[offset:],
            multiline=prompt.multiline,
            language=prompt.language,
            stop_strings=prompt.stop_strings,
        ),
    )
