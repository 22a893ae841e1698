"""The route of a completion: which engine answers it, and the FIM template its tokenizer reads.

Chosen before the prompt is fitted, so that the prompt is fitted for the engine that runs it.
Scopes more complex than `int8Complexity` go to the model's int8 variant when it has one, which
follows the full-precision model more closely; everything else takes the faster int4 weights.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from inference.router import ModelRouter
from lsp_server.backends.engine import GenerationEngine
from lsp_server.completion.context import CompletionContext
from lsp_server.settings import Settings
from prompts.fim import FimTemplate, select_template


@dataclass(frozen=True)
class Route:
    engine: GenerationEngine
    template: FimTemplate
    problem: str | None = None  # why the configured fimTemplate was not used, for the user


def choose_route(router: ModelRouter, context: CompletionContext, settings: Settings) -> Route:
    engine = router.pick(context.complexity, settings.int8_complexity)
    template, problem = fim_template(engine.tokenizer.special_tokens, settings.fim_template)
    return Route(engine=engine, template=template, problem=problem)


def fim_template(
    special_tokens: Collection[str], configured: str
) -> tuple[FimTemplate, str | None]:
    """The configured template when the tokenizer can spell it, else the detected one and why.

    A valid name can still not fit the model (codellama's tokens on a Qwen tokenizer): that
    must cost the user a message, not every completion."""
    if configured:
        try:
            return select_template(special_tokens, configured), None
        except ValueError as exc:
            problem = (
                f"fimTemplate {configured!r} does not fit this model ({exc}); "
                "using the template its tokenizer names instead"
            )
            return select_template(special_tokens), problem
    return select_template(special_tokens), None
