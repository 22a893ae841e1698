"""Asking the model to fill holes: which engine, how many samples, and the requests sent.

Shared by test generation and docstrings. The prompt's token ids come from prompts.holes; this
module is the part that talks to an engine. A hole gets one greedy answer and, when more
samples are asked for, sampled ones with fixed seeds, so the same code asks the same thing
twice; answers are cut at the first newline (a hole is one line).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from inference.scheduler import GenerationRequest
from lsp_server.backends.engine import GenerationEngine
from prompts.holes import HolePrompter, hole_template
from prompts.scope import scope_at


@dataclass(frozen=True)
class Sampling:
    samples: int = 3  # per hole: one greedy, the rest sampled
    temperature: float = 0.7
    top_p: float = 0.95
    value_tokens: int = 24
    assertion_tokens: int = 40
    chat_tokens: int = 768
    deadline_s: float = 60.0


DEFAULT_SAMPLING = Sampling()


class EnginePicker(Protocol):
    """The engines of one model tier (lsp_server.models' "pro" router): int8 for hard code."""

    def pick(self, complexity: int, threshold: int) -> GenerationEngine: ...


def engine_for(
    engines: EnginePicker, text: str, offset: int, int8_complexity: int
) -> GenerationEngine:
    """The engine that writes about the Python code at `offset`: the scope's complexity decides."""
    return engines.pick(scope_at(text, offset, "python").complexity, int8_complexity)


def hole_prompter(
    engine: GenerationEngine, answer_tokens: int, fim_override: str = ""
) -> HolePrompter:
    """A prompter whose prompts leave room in the engine's slot for `answer_tokens`."""
    tokenizer = engine.tokenizer
    template = hole_template(tokenizer.special_tokens, fim_override)
    return HolePrompter(tokenizer, template, engine.max_length - answer_tokens - 1)


async def sample_holes(
    engine: GenerationEngine,
    prompter: HolePrompter,
    prefix: str,
    suffix: str,
    max_new_tokens: int,
    sampling: Sampling,
) -> list[str]:
    """The distinct answers for one hole, the greedy one first."""
    prompt_ids = tuple(prompter.ids(prefix, suffix))
    stops = prompter.stop_ids()
    requests = [
        GenerationRequest(
            prompt_ids=prompt_ids,
            max_new_tokens=max_new_tokens,
            temperature=0.0 if i == 0 else sampling.temperature,
            top_p=1.0 if i == 0 else sampling.top_p,
            stop_token_ids=stops,
            stop_strings=("\n",),
            deadline_s=sampling.deadline_s,
            seed=i,
        )
        for i in range(max(1, sampling.samples))
    ]
    results = await asyncio.gather(*(engine.generate(r) for r in requests))
    return list(dict.fromkeys(result.text for result in results))
