"""The engine contract every completion feature codes against.

A local `inference.Engine` satisfies it today; the remote OpenAI-compatible backend will too, so
the completion pipeline, test generation and docstrings never ask which one they hold.
"""

from __future__ import annotations

from typing import Protocol

from inference.scheduler import GenerationRequest, GenerationResult
from inference.tokenizer import Tokenizer


class ModelIdentity(Protocol):
    """What a feature may know of the model behind an engine."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...  # changes whenever the weights or tokenizer change


class GenerationEngine(Protocol):
    @property
    def model(self) -> ModelIdentity: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def max_length(self) -> int: ...  # prompt plus completion tokens one request may hold (slot)

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...
