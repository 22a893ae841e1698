"""The prompt step: the prompt fitted to the routed engine's window, and the generation request.

Shared by the server and the quality evaluation (benchmarks/evaluate.py), so that both ask the
model the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from inference.scheduler import GenerationRequest
from lsp_server.backends.engine import GenerationEngine
from lsp_server.completion.context import CompletionContext
from lsp_server.completion.routing import Route
from lsp_server.settings import Settings
from prompts.budget import CompletionPrompt, build_completion_prompt
from prompts.context import Document, Snippet
from prompts.fim import FimTemplate
from prompts.healing import forced_text, space_then_word

# A single line rarely needs more; the cap keeps a rambling model from costing a long decode.
SINGLE_LINE_MAX_NEW_TOKENS = 48
# The one place the snippets' format is chosen: the template's repository format (each snippet
# after a file separator, under its path; the current file's path after one too), where the
# template has one (prompts.budget falls back to comments under a comment header otherwise).
# Qwen2.5-Coder, StarCoder2 and CodeGemma were trained on it, and so was the embedded model since
# flashcode-tiny v2 (v1, trained at file level, read comments better).
SNIPPETS_AS_FILES = True


def fit_prompt(
    context: CompletionContext,
    route: Route,
    settings: Settings,
    retrieved: Sequence[Snippet] | None = None,
) -> CompletionPrompt:
    """`retrieved`: the retrieval step's snippets; None: from the open documents alone."""
    return model_prompt(
        context.document,
        context.offset,
        context.open_documents,
        route.engine,
        route.template,
        settings.context_budget,
        settings.max_new_tokens,
        context.multiline,
        settings.token_healing,
        retrieved,
        SNIPPETS_AS_FILES,
    )


def generation_request(
    prompt: CompletionPrompt, route: Route, settings: Settings
) -> GenerationRequest:
    return model_request(prompt, route.engine, settings.max_new_tokens, settings.deadline_ms / 1000)


def model_prompt(
    document: Document,
    offset: int,
    open_documents: Sequence[Document],
    engine: GenerationEngine,
    template: FimTemplate,
    context_budget: int,
    max_new_tokens: int,
    multiline: bool | None = None,
    healing: bool = True,
    retrieved: Sequence[Snippet] | None = None,
    as_files: bool = SNIPPETS_AS_FILES,
) -> CompletionPrompt:
    """The prompt for the cursor, fitted so that it and the answer share the model's window."""
    # The answer is given at most half the window: a maxNewTokens as long as the window itself
    # (allowed, for a long-context model) would leave no room for a prompt at all, and every
    # request would fail. The engine stops an answer where the window ends.
    answer_room = min(max_new_tokens, engine.max_length // 2)
    budget = min(context_budget, engine.max_length - answer_room - 1)
    return build_completion_prompt(
        document,
        offset,
        open_documents,
        engine.tokenizer,
        template,
        budget,
        repo_level=as_files,
        multiline=multiline,
        healing=healing,
        retrieved=retrieved,
    )


def model_request(
    prompt: CompletionPrompt,
    engine: GenerationEngine,
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
        forced_prefix=forced_text(prompt.healed or ""),
        space_then_word=space_then_word(prompt.prefix, prompt.healed),
    )
