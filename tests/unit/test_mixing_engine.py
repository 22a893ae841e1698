"""Decode-time mixing through the real default model: the user's code steers the decoder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from inference.engine import Engine, EngineOptions
from inference.ngram import TokenSuffixIndex
from inference.scheduler import GenerationRequest
from lsp_server.workspace.segments import separator_for
from tests.conftest import e2e_model_dir

WORKSPACE_LINE = "    return frobnicate_quux(widget, 17, mode='strict')\n"


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    loaded = Engine.load(e2e_model_dir(), EngineOptions(max_batch=4))
    yield loaded
    loaded.close()


def _request(engine: Engine, prompt: str) -> GenerationRequest:
    ids = tuple(engine.tokenizer.encode(prompt))
    return GenerationRequest(
        prompt_ids=ids, max_new_tokens=16, stop_strings=("\n",), ngram_context=ids
    )


def _workspace(engine: Engine) -> TokenSuffixIndex:
    text = f"def other(widget):\n{WORKSPACE_LINE}"
    return TokenSuffixIndex.from_documents(
        [engine.tokenizer.encode(text)], separator=separator_for(engine.tokenizer.vocab_size)
    )


def test_a_long_match_in_the_workspace_is_continued_as_written(engine: Engine) -> None:
    prompt = "def process(widget):\n    return frobnicate_quux(widget,"
    request = _request(engine, prompt)
    alone = asyncio.run(engine.generate(request)).text
    mixed = asyncio.run(engine.generate(replace(request, ngram_sources=(_workspace(engine),))))
    assert mixed.text == " 17, mode='strict')"
    assert alone != mixed.text  # the model alone has never seen this code
    mixed_rows = engine.stats()["mixed_rows"]
    assert isinstance(mixed_rows, int) and mixed_rows > 0


def test_mixing_rows_in_a_batch_answer_as_they_do_alone(engine: Engine) -> None:
    prompts = [
        "def process(widget):\n    return frobnicate_quux(widget,",
        "def add(a, b):\n    return",
        "import os\n\ndef home():\n    return os.",
    ]
    sources = (_workspace(engine),)
    requests = [replace(_request(engine, p), ngram_sources=sources) for p in prompts]
    alone = [asyncio.run(engine.generate(r)).text for r in requests]

    async def together() -> list[str]:
        results = await asyncio.gather(*(engine.generate(r) for r in requests))
        return [r.text for r in results]

    assert asyncio.run(together()) == alone
