"""Engine: the asyncio face of the model. The model itself runs on the scheduler's thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from inference.lookup import PromptLookup
from inference.model import ModelInfo, load_model_info
from inference.prefill import PREFILL_CHUNK_TOKENS
from inference.prefix_cache import PrefixBudget, PrefixCache
from inference.runners import make_runner
from inference.scheduler import GenerationRequest, GenerationResult, Scheduler, Submission
from inference.session import choose_provider, physical_cores
from inference.tokenizer import Tokenizer

log = logging.getLogger("flashcode.inference")

# KV positions per slot; a model's context beyond this is not used (memory is slots x positions).
MAX_SLOT_LENGTH = 4096
VALID_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class EngineOptions:
    device: str = "auto"  # "auto" (CUDA when available) | "cpu" | "cuda"
    threads: int = 0  # intra-op threads; 0 = physical cores
    max_batch: int = 8  # sequence slots decoded together
    prefix_cache_mb: int = 256  # memory for the KV of recent prompts
    prefix_reuse: bool = True
    # speculative decoding: drafts from the prompt and the n-gram sources (inference/lookup.py)
    prompt_lookup: bool = True
    # Prompt tokens run per scheduler step, decode steps of other requests between the chunks;
    # 0: a whole prompt in one step.
    prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS
    # Shared with the other engines loaded together (a model's int4 and int8 variants), so that
    # prefix_cache_mb bounds their sum; None: this engine's cache has the budget to itself.
    prefix_budget: PrefixBudget | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.device not in VALID_DEVICES:
            raise ValueError(
                f"device must be one of {', '.join(VALID_DEVICES)}, got {self.device!r}"
            )
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = physical cores), got {self.threads}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.prefix_cache_mb < 0:
            raise ValueError(f"prefix_cache_mb must be >= 0, got {self.prefix_cache_mb}")
        if self.prefill_chunk_tokens < 0:
            raise ValueError(
                f"prefill_chunk_tokens must be >= 0 (0 = whole prompts), got"
                f" {self.prefill_chunk_tokens}"
            )


class Engine:
    """Generation over one model: continuous batching, prefix reuse, cancellation by task."""

    def __init__(
        self,
        model: ModelInfo,
        tokenizer: Tokenizer,
        provider: str,
        scheduler: Scheduler,
        threads: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.provider = provider
        self.threads = threads
        self._scheduler = scheduler

    @classmethod
    def load(cls, model_dir: Path, options: EngineOptions = EngineOptions()) -> Engine:
        """Load the model and start its thread (blocking; raises ModelError for a bad directory)."""
        info = load_model_info(Path(model_dir))
        tokenizer = Tokenizer.from_model_dir(info.path)
        provider = choose_provider(options.device)
        threads = options.threads or physical_cores()
        max_length = min(info.context_length, MAX_SLOT_LENGTH)
        runner = make_runner(info, provider, threads, options.max_batch, max_length)
        cache = None
        if options.prefix_reuse and options.prefix_cache_mb > 0:
            cache = PrefixCache(options.prefix_cache_mb * 2**20, options.prefix_budget)
        scheduler = Scheduler(runner, tokenizer, cache, options.prefill_chunk_tokens)
        scheduler.lookup = PromptLookup() if options.prompt_lookup else None
        scheduler.start()
        log.info(
            "engine ready: %s (%s, %s) on %s, %d slots x %d positions",
            info.name, info.family, info.precision, provider, options.max_batch, max_length,
        )  # fmt: skip
        return cls(info, tokenizer, provider, scheduler, threads)

    @property
    def max_length(self) -> int:
        """Prompt plus generated tokens one request may hold."""
        return self._scheduler.runner.max_length

    def _validate(self, request: GenerationRequest) -> None:
        if not request.prompt_ids:
            raise ValueError("prompt_ids is empty")
        if len(request.prompt_ids) >= self.max_length:
            raise ValueError(
                f"prompt has {len(request.prompt_ids)} tokens; this engine holds "
                f"{self.max_length} per request (prompt and completion together)"
            )
        if request.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {request.max_new_tokens}")
        if request.temperature < 0 or not 0 < request.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """A completion. Cancelling the awaiting task removes the request at the next step."""
        self._validate(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[GenerationResult] = loop.create_future()

        def done(outcome: GenerationResult | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's event loop is already closed
                loop.call_soon_threadsafe(_settle, future, outcome)

        submission = Submission(request, done)
        self._scheduler.submit(submission)
        try:
            return await future
        except asyncio.CancelledError:
            submission.cancel()
            raise

    async def warm(self, prompt_ids: tuple[int, ...], key: str = "") -> bool:
        """Prefill `prompt_ids` into the prefix cache at the lowest priority, for a request that
        is likely to come (the document just opened, the cursor after a pause). It runs only while
        no request waits or decodes, yields at once to one that arrives, and is replaced by a
        newer warm of the same `key` (the document): then it ends early, keeping the part it ran.
        True when the whole prompt's KV is in the prefix cache; never a completion."""
        if self._scheduler.prefix_cache is None or not prompt_ids:
            return False
        if len(prompt_ids) >= self.max_length:
            prompt_ids = prompt_ids[: self.max_length - 1]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[GenerationResult] = loop.create_future()

        def done(outcome: GenerationResult | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's event loop is already closed
                loop.call_soon_threadsafe(_settle, future, outcome)

        submission = Submission(GenerationRequest(prompt_ids, max_new_tokens=1), done, warm_key=key)
        self._scheduler.submit(submission)
        try:
            result = await future
        except asyncio.CancelledError:
            submission.cancel()
            raise
        return result.finish_reason == "stop"

    def stats(self) -> dict[str, object]:
        return {
            "model": self.model.name,
            "precision": self.model.precision,
            "provider": self.provider,
            "threads": self.threads,
            "max_length": self.max_length,
            **self._scheduler.stats(),
        }

    def close(self) -> None:
        """Stop the model thread; requests still running finish as "cancelled"."""
        self._scheduler.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(
    future: asyncio.Future[GenerationResult], outcome: GenerationResult | BaseException
) -> None:
    if future.done():  # the awaiting task was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
