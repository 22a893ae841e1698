"""Speculative decoding by prompt lookup: drafts from the user's code change speed, never the text.

The shipped int4 model computes its matrix products on int8-quantized activations
(MatMulNBits accuracy level 4), and onnxruntime's kernel for several rows rounds an occasional
block differently from its one-row kernel: a verify of k+1 tokens, like a batched step or a
prefill, can move a logit by about 1e-3, which flips the argmax only at a near-tie. The strict
tests therefore run a copy of the default model with float32 products (accuracy level 0), where
verifying is bit-identical to decoding one token at a time; the shipped model is checked on
real code as a user would see it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from inference.engine import Engine, EngineOptions
from inference.lookup import Drafter, LookupOptions, PromptLookup
from inference.ngram import TokenSuffixIndex
from inference.sampling import Sampler
from inference.scheduler import GenerationRequest
from tests.conftest import e2e_model_dir

# Code whose continuation repeats what is already in the buffer: the second and third methods
# are written like the first.
REPEATING = [
    "class Store:\n"
    "    def get_user(self, key):\n"
    "        value = self.cache.get(key)\n"
    "        if value is None:\n"
    "            value = self.backend.load(key)\n"
    "            self.cache[key] = value\n"
    "        return value\n\n"
    "    def get_order(self, key):\n"
    "        value = self.cache.get(key)\n",
    "import os\n\n\ndef read(path):\n    with open(path) as handle:\n"
    "        return handle.read()\n\n\n"
    "def read_lines(path):\n    with open(path) as handle:\n",
    "for name in names:\n    print(name)\n    total += len(name)\n"
    "for name in other_names:\n    print(",
]
WORKSPACE = (
    "def handle_request(request, session):\n"
    "    payload = json.loads(request.body)\n"
    "    user = session.query(User).filter_by(id=payload['user_id']).first()\n"
    "    return render(user, payload)\n"
)


def _float32_products(source: Path, target: Path) -> Path:
    """A copy of a MatMulNBits model whose products run in float32 (accuracy level 0)."""
    target.mkdir()
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith("model.onnx"):
            shutil.copy(path, target / path.name)
    model = onnx.load(str(source / "model.onnx"))
    for node in model.graph.node:
        for attribute in node.attribute:
            if node.op_type == "MatMulNBits" and attribute.name == "accuracy_level":
                attribute.i = 0
    onnx.save(model, str(target / "model.onnx"), save_as_external_data=True,
              location="model.onnx.data")  # fmt: skip
    return target


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Engine]]:
    model = _float32_products(e2e_model_dir(), tmp_path_factory.mktemp("exact") / "model")
    # no prefix reuse: a reused prompt's cache was computed in other chunks than a cold one
    plain = Engine.load(model, EngineOptions(max_batch=4, prompt_lookup=False, prefix_reuse=False))
    speculating = Engine.load(model, EngineOptions(max_batch=4, prefix_reuse=False))
    yield plain, speculating
    plain.close()
    speculating.close()


def _requests(engine: Engine, **fields: object) -> list[GenerationRequest]:
    requests = []
    for text in REPEATING:
        ids = tuple(engine.tokenizer.encode(text))
        requests.append(replace(GenerationRequest(prompt_ids=ids, max_new_tokens=40), **fields))
    return requests


def _texts(engine: Engine, requests: list[GenerationRequest]) -> list[str]:
    return [asyncio.run(engine.generate(r)).text for r in requests]


def _accepted(engine: Engine) -> int:
    accepted = engine.stats()["lookup_accepted_tokens"]
    assert isinstance(accepted, int)
    return accepted


def test_greedy_output_is_the_plain_decoders_while_drafts_are_accepted(
    engines: tuple[Engine, Engine],
) -> None:
    plain, speculating = engines
    requests = _requests(plain)
    before = _accepted(speculating)
    assert _texts(speculating, requests) == _texts(plain, requests)
    assert _accepted(speculating) > before  # the drafts did stand in for decode steps
    assert plain.stats().get("lookup_drafts") is None  # switched off: no speculation at all


def test_mixed_rows_answer_as_the_plain_decoder_with_the_same_sources(
    engines: tuple[Engine, Engine],
) -> None:
    plain, speculating = engines
    workspace = TokenSuffixIndex.from_documents(
        [plain.tokenizer.encode(WORKSPACE)], separator=max(plain.tokenizer.vocab_size, 0xFFFF)
    )
    prompt = "def show(request, session):\n    payload = json.loads(request.body)\n    user ="
    ids = tuple(plain.tokenizer.encode(prompt))
    request = GenerationRequest(
        prompt_ids=ids, max_new_tokens=32, ngram_sources=(workspace,), ngram_context=ids
    )
    requests = [request, *(replace(r, ngram_sources=(workspace,), ngram_context=r.prompt_ids)
                           for r in _requests(plain))]  # fmt: skip
    before = _accepted(speculating)
    expected = _texts(plain, requests)
    assert _texts(speculating, requests) == expected
    assert "filter_by(id=payload['user_id'])" in expected[0]  # the workspace line was copied
    assert _accepted(speculating) > before


def test_every_row_of_a_batch_answers_as_it_does_alone(engines: tuple[Engine, Engine]) -> None:
    plain, speculating = engines
    # rows with drafts and rows without (an unrelated prompt) in the same steps
    requests = [*_requests(plain), GenerationRequest(tuple(plain.tokenizer.encode("x = ")), 12)]

    async def together() -> list[str]:
        results = await asyncio.gather(*(speculating.generate(r) for r in requests))
        return [result.text for result in results]

    assert asyncio.run(together()) == _texts(plain, requests)


def test_stop_strings_forced_prefixes_and_stop_tokens_cut_where_they_did(
    engines: tuple[Engine, Engine],
) -> None:
    plain, speculating = engines
    eos = plain.tokenizer.eos_token_ids
    variants = [
        _requests(plain, stop_strings=("\n\n",)),
        _requests(plain, stop_strings=("self",)),
        _requests(plain, stop_token_ids=eos, max_new_tokens=64),
        _requests(plain, forced_prefix=" ", max_new_tokens=6),
    ]
    for requests in variants:
        assert _texts(speculating, requests) == _texts(plain, requests)


def test_a_draft_never_runs_past_the_token_limit(engines: tuple[Engine, Engine]) -> None:
    plain, speculating = engines
    for limit in (1, 2, 3, 5):
        requests = _requests(plain, max_new_tokens=limit)
        results = [asyncio.run(speculating.generate(r)) for r in requests]
        assert [len(r.token_ids) for r in results] == [limit] * len(requests)
        assert [r.text for r in results] == _texts(plain, requests)


def test_sampled_rows_are_not_speculated_and_keep_their_seeded_answer(
    engines: tuple[Engine, Engine],
) -> None:
    plain, speculating = engines
    requests = _requests(plain, temperature=0.8, seed=7)
    drafts = speculating.stats()["lookup_drafts"]
    assert _texts(speculating, requests) == _texts(plain, requests)
    assert speculating.stats()["lookup_drafts"] == drafts


def test_a_failed_verify_fails_its_request_and_the_engine_serves_on(
    engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, speculating = engines
    runner = speculating._scheduler.runner
    real_verify = runner.verify

    def broken(slot: int, tokens: list[int]) -> np.ndarray:
        monkeypatch.setattr(runner, "verify", real_verify)
        raise RuntimeError("device lost")

    monkeypatch.setattr(runner, "verify", broken)
    request = _requests(plain)[0]
    with pytest.raises(RuntimeError, match="device lost"):
        asyncio.run(speculating.generate(request))
    assert _texts(speculating, [request]) == _texts(plain, [request])


def test_the_draft_comes_from_the_latest_occurrence_and_the_longest_match() -> None:
    prompt = (1, 2, 3, 10, 11, 5, 1, 2, 3, 20, 21, 22, 9, 1, 2)
    drafter = Drafter(GenerationRequest(prompt), capacity=8)
    # "1 2" occurs twice before; the latest went on with 3, 20, 21
    assert drafter.draft([], 3) == (2, [3, 20, 21])
    assert drafter.draft([3], 3) == (3, [20, 21, 22])
    # a source that matches longer wins over the prompt
    source = TokenSuffixIndex.from_documents([[7, 1, 2, 3, 4, 30, 31]], separator=0xFFFF)
    request = GenerationRequest((1, 2, 3, 10, 7, 1, 2, 3), ngram_sources=(source,),
                                ngram_context=(7, 1, 2, 3))  # fmt: skip
    assert Drafter(request, capacity=8).draft([4], 4) == (5, [30, 31])  # cut at its document end
    assert Drafter(GenerationRequest((5, 6, 7)), capacity=4).draft([], 4) == (0, [])
    # a match that starts at the prompt's first token
    assert Drafter(GenerationRequest((1, 2, 3, 4, 5, 1, 2, 3)), 4).draft([], 2) == (3, [4, 5])


def test_lookup_options_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"max_draft must be in \[1, 15\], got 0"):
        LookupOptions(max_draft=0)
    with pytest.raises(ValueError, match="got 16"):
        LookupOptions(max_draft=16)
    with pytest.raises(ValueError, match="min_match must be >= 1, got 0"):
        LookupOptions(min_match=0)


@dataclass(eq=False)
class _Row:
    """A scheduler row as the speculation sees it."""

    drafter: Drafter | None
    slot: int
    generated: list[int] = field(default_factory=list)
    limit: int = 32
    sampler: Sampler = field(default_factory=Sampler)


# every row's context repeats its prompt: each has a draft of 8
PROMPT = (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3)


def _request_of(row: _Row) -> GenerationRequest:
    return GenerationRequest(PROMPT)


def _rows(count: int) -> list[_Row]:
    return [_Row(None, slot) for slot in range(count)]


def test_drafts_run_alone_but_not_where_a_batched_step_is_worth_more() -> None:
    lookup = PromptLookup()
    lookup._verify_ms = {9: 1.5}  # a verify of 8 drafted tokens: 1.5 ms
    # eight rows: a 1 ms step gives 8 tokens; a verify per row would give 5 per ms
    batch = _rows(8)
    steps = {size: [0.0008 + 0.00003 * size, 1] for size in range(1, 9)}
    # not measured yet: run them, to measure them
    assert list(lookup.drafts(batch, _request_of, {})) == batch
    assert lookup.drafts(batch, _request_of, steps) == {}
    assert lookup.declined == 1
    # two rows: a 0.6 ms step gives 2 tokens, a verify about 7 for 1.5 ms
    pair = _rows(2)
    assert list(lookup.drafts(pair, _request_of, steps)) == pair
    # alone, a row always runs its draft...
    alone = _rows(1)
    lookup._verify_ms = {9: 50.0}
    assert list(lookup.drafts(alone, _request_of, {1: [0.0005, 1]})) == alone
    # ...until its drafts have kept failing
    drafter = alone[0].drafter
    assert drafter is not None
    for _ in range(10):
        drafter.accepted(0, 8)
    assert lookup.drafts(alone, _request_of, {1: [0.0005, 1]}) == {}


def test_declined_drafts_still_run_now_and_then_so_their_cost_is_measured_again() -> None:
    lookup = PromptLookup()
    lookup._verify_ms = {9: 50.0}  # one slow sample (a busy machine)
    steps = {2: [0.0006, 1], 1: [0.0005, 1]}
    ran = [bool(lookup.drafts(_rows(2), _request_of, steps)) for _ in range(32)]
    assert ran.count(True) == 2 and ran[15] and ran[31]
