"""A fake GenerationEngine for unit tests of the features' cores: the embedded model's real
tokenizer, and an answer given in advance instead of the model. mypy checks it against the
Protocol (lsp_server.backends.engine)."""

from __future__ import annotations

from dataclasses import dataclass, field

from inference.scheduler import GenerationRequest, GenerationResult
from inference.tokenizer import Tokenizer
from lsp_server.backends.engine import GenerationEngine
from tests.conftest import DEFAULT_MODEL


@dataclass(frozen=True)
class FakeModel:
    name: str = "fake"
    fingerprint: str = "fake-0"


def fresh_tokenizer() -> Tokenizer:
    """A tokenizer of its own: a test may change its special tokens or chat template."""
    return Tokenizer.from_model_dir(DEFAULT_MODEL)


@dataclass
class FakeEngine:
    """Answers every request with the same text, and records the requests it got."""

    answer: str
    max_length: int = 4096
    tokenizer: Tokenizer = field(default_factory=fresh_tokenizer)
    model: FakeModel = field(default_factory=FakeModel)
    requests: list[GenerationRequest] = field(default_factory=list)
    fail: Exception | None = None  # raised by generate instead of answering

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        # A real engine's answer starts with the forced prefix (token healing): the answers
        # given here are what follows the cursor, so the typed text goes before them.
        forced = request.forced_prefix
        return GenerationResult(
            token_ids=[],
            text=self.answer if self.answer.startswith(forced) else forced + self.answer,
            finish_reason="stop",
            prompt_tokens=len(request.prompt_ids),
            reused_prompt_tokens=0,
            prefill_ms=0.0,
            total_ms=0.0,
            steps=1,
        )


@dataclass
class FakeEngines:
    """The "pro" tier: the same engine whatever the code's complexity."""

    engine: FakeEngine
    picked: list[int] = field(default_factory=list)

    def pick(self, complexity: int, threshold: int) -> GenerationEngine:
        self.picked.append(complexity)
        return self.engine


def _conforms(engine: FakeEngine) -> GenerationEngine:
    return engine  # mypy: the fake implements the Protocol
