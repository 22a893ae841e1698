"""The engine contract every completion feature codes against.

A local `inference.Engine` satisfies it, and so does the remote OpenAI-compatible backend
(backends/remote.py): the completion pipeline, test generation and docstrings never ask which
one they hold. `ServingEngine` adds what the server's status and shutdown need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from inference.scheduler import GenerationRequest, GenerationResult


class ModelIdentity(Protocol):
    """What a feature may know of the model behind an engine."""

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...  # changes whenever the weights or tokenizer change


class EngineTokenizer(Protocol):
    """What prompts are built with: the model's tokenizer, or a character budget (remote)."""

    def encode(self, text: str) -> list[int]: ...  # no special tokens added or recognized

    def decode(self, ids: Sequence[int]) -> str: ...  # special tokens left out

    def token_id(self, name: str) -> int | None: ...

    @property
    def special_tokens(self) -> Mapping[str, int]: ...  # text of each special token -> id

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    @property
    def chat_template(self) -> str | None: ...


class GenerationEngine(Protocol):
    @property
    def model(self) -> ModelIdentity: ...

    @property
    def tokenizer(self) -> EngineTokenizer: ...

    @property
    def max_length(self) -> int: ...  # prompt plus completion tokens one request may hold (slot)

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...


class ServingEngine(GenerationEngine, Protocol):
    @property
    def provider(self) -> str: ...  # onnxruntime's execution provider, or "remote"

    def stats(self) -> dict[str, object]: ...

    def close(self) -> None: ...
