"""The completion pipeline on its own: no server, a fake engine that answers what it is told.

These pin the orchestration: which step ends a request, what reaches the engine, what the
statistics say, and that one completion runs the steps once each, in order.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from inference.router import ModelRouter, default_model_dir
from inference.scheduler import GenerationRequest, GenerationResult
from inference.tokenizer import Tokenizer
from lsp_server.backends.local import ModelManager, ModelState
from lsp_server.completion.outcome import CompletionOutcome
from lsp_server.completion.pipeline import CompletionService
from lsp_server.settings import CacheSettings, Settings
from prompts.context import Document

TOKENIZER = Tokenizer.from_model_dir(default_model_dir())


@dataclass(frozen=True)
class FakeModel:
    name: str = "fake"
    fingerprint: str = "fake-1"


@dataclass
class FakeEngine:
    """A GenerationEngine that answers `answer` and remembers every request."""

    answer: str = "self.name\n"
    finish_reason: str = "stop"
    model: FakeModel = field(default_factory=FakeModel)
    tokenizer: Tokenizer = TOKENIZER
    max_length: int = 2048
    requests: list[GenerationRequest] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    hold: bool = False  # wait until cancelled, like a long decode

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        self.started.set()
        if self.hold:
            await asyncio.Event().wait()
        # A real engine's answer starts with the forced prefix (token healing): the answers
        # given here are what follows the cursor, so the typed text goes before them.
        forced = request.forced_prefix
        text = self.answer if self.answer.startswith(forced) else forced + self.answer
        return GenerationResult(
            token_ids=TOKENIZER.encode(text),
            text=text,
            finish_reason=self.finish_reason,  # type: ignore[arg-type]
            prompt_tokens=len(request.prompt_ids),
            reused_prompt_tokens=0,
            prefill_ms=1.0,
            total_ms=2.0,
            steps=2,
        )


def service_with(
    engines: dict[str, Any], tmp_path: Path, **settings: Any
) -> tuple[CompletionService, Settings]:
    models = ModelManager()
    models.flash = ModelRouter(engines)
    models.state = ModelState.READY
    settings.setdefault("cache", CacheSettings(directory=str(tmp_path / "cache")))
    chosen = Settings(**settings)
    service = CompletionService(models)
    service.apply_settings(chosen)
    return service, chosen


REPR = (
    "class User:\n    def __init__(self, name):\n        self.name = name\n\n"
    "    def __repr__(self):\n        return "
)


def document(text: str = REPR, name: str = "user.py") -> Document:
    return Document(uri=f"file:///w/{name}", path=f"/w/{name}", language_id="python", text=text)


async def test_the_models_answer_is_post_processed_and_counted(tmp_path: Path) -> None:
    engine = FakeEngine(answer="self.name\n\n    def other(self):")
    service, settings = service_with({"primary": engine}, tmp_path)
    suggestion = await service.suggest(document(), len(REPR), [], settings)
    assert suggestion is not None
    assert (suggestion.text, suggestion.source) == ("self.name", "model")
    assert suggestion.line_prefix == "        return "
    assert len(engine.requests) == 1
    assert service.stats.answered == 1 and service.stats.by_source == {"model": 1}
    service.close()


async def test_the_same_request_again_comes_from_the_cache_not_the_model(tmp_path: Path) -> None:
    engine = FakeEngine()
    service, settings = service_with({"primary": engine}, tmp_path)
    first = await service.suggest(document(), len(REPR), [], settings)
    service.forget("file:///w/user.py")  # no typing-ahead: the cache must answer
    second = await service.suggest(document(), len(REPR), [], settings)
    assert first is not None and second is not None
    assert (second.text, second.source) == (first.text, "cache")
    assert len(engine.requests) == 1
    service.close()


async def test_typing_what_was_shown_needs_no_model(tmp_path: Path) -> None:
    engine = FakeEngine()
    service, settings = service_with({"primary": engine}, tmp_path)
    shown = await service.suggest(document(), len(REPR), [], settings)
    typed = document(REPR + "self.")
    rest = await service.suggest(typed, len(typed.text), [], settings)
    assert shown is not None and rest is not None
    assert (rest.text, rest.source, rest.id) == ("name", "typeahead", shown.id)
    assert len(engine.requests) == 1
    service.close()


async def test_nothing_is_asked_while_the_model_loads(tmp_path: Path) -> None:
    engine = FakeEngine()
    service, settings = service_with({"primary": engine}, tmp_path)
    service.models.state = ModelState.LOADING
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert engine.requests == [] and service.stats.empty == 1
    service.close()


async def test_code_after_the_cursor_stops_a_typed_request_but_not_an_invoked_one(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(answer="x")
    service, settings = service_with(
        {"primary": engine}, tmp_path, cache=CacheSettings(enabled=False)
    )
    text = "value = compute(a, b) + 1\n"
    offset = text.index("compute")
    assert await service.suggest(document(text), offset, [], settings) is None
    assert engine.requests == []
    await service.suggest(document(text), offset, [], settings, invoked=True)
    assert len(engine.requests) == 1
    service.close()


async def test_a_complex_scope_goes_to_the_int8_engine_with_a_prompt_fitted_for_it(
    tmp_path: Path,
) -> None:
    small, precise = FakeEngine(max_length=4096), FakeEngine(max_length=256)
    service, settings = service_with(
        {"primary": small, "int8": precise}, tmp_path, int8_complexity=0
    )
    body = "".join(f"    if x > {i}:\n        x -= {i}\n" for i in range(60))
    text = f"def f(x):\n{body}    return "
    await service.suggest(document(text, "f.py"), len(text), [], settings)
    assert small.requests == [] and len(precise.requests) == 1
    # Fitted for the int8 engine's window, not the primary's.
    request = precise.requests[0]
    assert len(request.prompt_ids) + request.max_new_tokens < precise.max_length
    service.close()


async def test_a_cancelled_request_is_counted_and_shows_nothing(tmp_path: Path) -> None:
    engine = FakeEngine(hold=True)
    service, settings = service_with({"primary": engine}, tmp_path)
    task = asyncio.ensure_future(service.suggest(document(), len(REPR), [], settings))
    await engine.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service.stats.cancelled == 1 and service.stats.answered == 0
    service.close()


async def test_every_returned_request_is_announced_to_subscribers(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine(answer="\n")}, tmp_path)
    seen: list[int] = []
    service.finished.subscribe(lambda stats: seen.append(stats.requests))
    await service.suggest(document(), len(REPR), [], settings)  # the model answers nothing
    service.forget("file:///w/user.py")
    await service.suggest(document(), len(REPR), [], settings)
    assert seen == [1, 2] and service.stats.empty == 2
    service.close()


def outcomes_of(service: CompletionService) -> list[CompletionOutcome]:
    """Every request's outcome, as a listener of `finished` (the usage count) sees them."""
    seen: list[CompletionOutcome] = []
    service.finished.subscribe(lambda stats: seen.append(stats.last_outcome))  # type: ignore[arg-type]
    return seen


async def test_each_request_ends_in_an_outcome_naming_the_layer_that_answered(
    tmp_path: Path,
) -> None:
    engine = FakeEngine()
    service, settings = service_with({"primary": engine}, tmp_path)
    seen = outcomes_of(service)
    first = await service.suggest(document(), len(REPR), [], settings)
    service.forget("file:///w/user.py")
    again = await service.suggest(document(), len(REPR), [], settings)
    typed = document(REPR + "self.")
    rest = await service.suggest(typed, len(typed.text), [], settings)
    text = "value = compute(a, b) + 1\n"
    await service.suggest(document(text, "mid.py"), text.index("compute"), [], settings)
    assert first is not None and again is not None and rest is not None
    assert [(o.layer, o.shown, o.suggestion_id) for o in seen] == [
        ("model", True, first.id),
        ("cache", True, again.id),
        ("typeahead", True, again.id),  # the rest of the suggestion on screen
        ("none", False, ""),
    ]
    assert {o.language for o in seen} == {"python"}
    model = seen[0]
    assert model.generated_tokens == len(TOKENIZER.encode("self.name\n"))
    assert model.prompt_tokens == len(engine.requests[0].prompt_ids) > 0
    assert [o.generated_tokens + o.prompt_tokens for o in seen[1:]] == [0, 0, 0]
    service.close()


async def test_an_answer_emptied_after_the_model_ran_counts_for_the_model_not_shown(
    tmp_path: Path,
) -> None:
    service, settings = service_with({"primary": FakeEngine(answer="  ")}, tmp_path)
    seen = outcomes_of(service)
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert await service.suggest(document(), len(REPR), [], settings) is None  # the exact cache
    assert [(o.layer, o.shown) for o in seen] == [("model", False), ("cache", False)]
    service.close()


async def test_a_cancelled_request_is_announced_as_cancelled(tmp_path: Path) -> None:
    engine = FakeEngine(hold=True)
    service, settings = service_with({"primary": engine}, tmp_path)
    seen = outcomes_of(service)
    task = asyncio.ensure_future(service.suggest(document(), len(REPR), [], settings))
    await engine.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(o.layer, o.shown, o.language) for o in seen] == [("cancelled", False, "python")]
    service.close()


async def test_an_accepted_suggestion_is_announced_by_its_id(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine()}, tmp_path)
    accepted: list[str] = []
    service.accepted_ids.subscribe(accepted.append)
    suggestion = await service.suggest(document(), len(REPR), [], settings)
    assert suggestion is not None
    assert service.accepted(suggestion.id) is True
    assert service.accepted("not-shown") is False
    assert accepted == [suggestion.id]
    service.close()


def _trace_modules(calls: list[str]) -> Any:
    """A profile hook recording the module of each function entered, for lsp_server.completion."""

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if module.startswith("lsp_server.completion.") and module != (
                "lsp_server.completion.pipeline"
            ):
                calls.append(module.rsplit(".", 1)[1])

    return hook


async def test_one_completion_enters_each_step_module_once_and_in_order(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine()}, tmp_path)
    calls: list[str] = []
    sys.setprofile(_trace_modules(calls))
    try:
        await service.suggest(document(), len(REPR), [], settings)
    finally:
        sys.setprofile(None)
    visits = [module for i, module in enumerate(calls) if i == 0 or calls[i - 1] != module]
    # `cache` is the decorator that keeps a cache fault from costing the completion.
    steps = [module for module in visits if module != "cache"]
    assert steps == [
        "context",
        "routing",
        "pattern_step",
        "retrieval_step",
        "prompt_step",
        "mixing_step",
        "exact_step",
        "postprocess_step",
        "store_step",
        "outcome",  # what the request came to, for the usage count
    ]
    service.close()


# --- why an answer is empty (flashcode/stats' emptyByReason, `flashcode eval repo`) ---------


async def test_an_empty_answer_while_the_model_loads_says_not_ready(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine()}, tmp_path)
    service.models.state = ModelState.LOADING
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert service.stats.last_empty_reason == "not-ready"
    assert service.stats.empty_by_reason == {"not-ready": 1}
    service.close()


async def test_code_after_the_cursor_counts_as_the_mid_line_filter(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine()}, tmp_path)
    text = "value = compute(a, b) + 1\n"
    assert await service.suggest(document(text), text.index("compute"), [], settings) is None
    assert service.stats.empty_by_reason == {"mid-line-filter": 1}
    service.close()


async def test_a_blank_model_answer_counts_as_model_empty(tmp_path: Path) -> None:
    service, settings = service_with({"primary": FakeEngine(answer="  ")}, tmp_path)
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert service.stats.empty_by_reason == {"model-empty": 1}
    service.close()


async def test_an_answer_a_rule_drops_counts_under_that_rules_name(tmp_path: Path) -> None:
    # After code on the cursor's line, an answer that starts with an indentation fits nowhere.
    engine = FakeEngine(answer="        self.assertEqual(a, b)")
    service, settings = service_with({"primary": engine}, tmp_path)
    text = "def f(a):\n    return str("
    assert await service.suggest(document(text), len(text), [], settings) is None
    assert service.stats.last_empty_reason == "drop_indentation_mid_line"
    assert service.stats.empty_by_reason == {"drop_indentation_mid_line": 1}
    service.close()


async def test_a_blank_answer_from_the_exact_cache_counts_as_cache_empty(tmp_path: Path) -> None:
    engine = FakeEngine(answer="")
    service, settings = service_with({"primary": engine}, tmp_path)
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert await service.suggest(document(), len(REPR), [], settings) is None
    assert len(engine.requests) == 1  # the second came from the cache
    assert service.stats.empty_by_reason == {"model-empty": 1, "cache-empty": 1}
    assert service.stats.last_empty_reason == "cache-empty"
    service.close()


async def test_a_fim_template_the_model_cannot_spell_costs_one_message_not_the_completions(
    tmp_path: Path,
) -> None:
    engine = FakeEngine()
    service, settings = service_with({"primary": engine}, tmp_path, fim_template="codellama")
    said: list[str] = []
    service.problems.subscribe(said.append)
    first = await service.suggest(document(), len(REPR), [], settings)
    service.forget("file:///w/user.py")
    second = await service.suggest(document(REPR + "\n"), len(REPR), [], settings)
    assert first is not None and second is not None
    assert len(said) == 1 and "codellama" in said[0]
    service.close()


async def test_a_partial_word_is_forced_into_the_answer_and_dropped_from_what_is_shown(
    tmp_path: Path,
) -> None:
    engine = FakeEngine(answer=" self.items = []")
    service, settings = service_with({"primary": engine}, tmp_path)
    text = "class Stack:\n    def push(self, item):\n        se"
    suggestion = await service.suggest(document(text), len(text), [], settings)
    assert engine.requests[-1].forced_prefix == " se"
    assert suggestion is not None and suggestion.text == "lf.items = []"


async def test_token_healing_off_forces_nothing(tmp_path: Path) -> None:
    engine = FakeEngine(answer="lf.items = []")
    service, settings = service_with({"primary": engine}, tmp_path, token_healing=False)
    text = "class Stack:\n    def push(self, item):\n        se"
    suggestion = await service.suggest(document(text), len(text), [], settings)
    assert engine.requests[-1].forced_prefix == ""
    assert suggestion is not None and suggestion.text == "lf.items = []"
