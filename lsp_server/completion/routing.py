"""The route of a completion: which engine answers it, and the FIM template its tokenizer reads.

Chosen before the prompt is fitted, so that the prompt is fitted for the engine that runs it.
Scopes more complex than `int8Complexity` go to the model's int8 variant when it has one, which
follows the full-precision model more closely; everything else takes the faster int4 weights.
"""

from __future__ import annotations

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


def choose_route(router: ModelRouter, context: CompletionContext, settings: Settings) -> Route:
    engine = router.pick(context.complexity, settings.int8_complexity)
    template = select_template(engine.tokenizer.special_tokens, settings.fim_template or None)
    return Route(engine=engine, template=template)
