"""Forced first tokens (token healing): the vocabulary mask against a brute-force check, and the
scheduler writing the forced text first, alone and in a batch, greedily and deterministically."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from inference.engine import Engine, EngineOptions
from inference.forcing import ForcedPrefixIndex, constrain
from inference.router import default_model_dir
from inference.scheduler import GenerationRequest
from inference.tokenizer import Tokenizer

REMAINDERS = [" se", "fro", ".fo", "(", " ", "\t", "  ", '("hel', "café", " ==", "1", "x"]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_model_dir(default_model_dir())


@pytest.fixture(scope="module")
def index(tokenizer: Tokenizer) -> ForcedPrefixIndex:
    return ForcedPrefixIndex(tokenizer.token_texts())


def brute_force(texts: list[str], remainder: str) -> set[int]:
    allowed = set()
    for token, text in enumerate(texts):
        if not text or "\ufffd" in text:
            continue
        if remainder.startswith(text):
            allowed.add(token)
        elif text.startswith(remainder):
            after = text[len(remainder)]
            if not (remainder[-1] in " \t" and after in " \t"):
                allowed.add(token)
    return allowed


@pytest.mark.parametrize("remainder", REMAINDERS)
def test_the_mask_allows_exactly_the_consistent_tokens(
    tokenizer: Tokenizer, index: ForcedPrefixIndex, remainder: str
) -> None:
    texts = tokenizer.token_texts()
    allowed = index.allowed(remainder)
    assert set(allowed.tolist()) == brute_force(texts, remainder)
    assert allowed.size > 0


def test_reaching_keeps_the_pieces_that_write_all_of_the_typed_text() -> None:
    texts = ["", "I", "Im", "Imp", "Implem", "Implemented", "Implement", "x", " ", " s"]
    index = ForcedPrefixIndex(texts)
    reaching = {texts[t] for t in index.reaching("Implem").tolist()}
    assert reaching == {"Implem", "Implemented", "Implement"}
    # No piece writes all of " se": the ones that write part of it stay allowed.
    assert {texts[t] for t in index.reaching(" se").tolist()} == {" ", " s"}


def test_a_remembered_answer_cannot_be_changed_by_its_caller() -> None:
    texts = ["", "I", "Im", "Imp", "Implem", "x"]
    index = ForcedPrefixIndex(texts)
    first = index.allowed("Imp")
    with pytest.raises(ValueError):
        first[0] = 5  # a caller that wrote into the memo would corrupt every later answer
    assert index.allowed("Imp") is first
    assert {texts[t] for t in index.allowed("Imp").tolist()} == {"I", "Im", "Imp", "Implem"}
    assert {texts[t] for t in index.reaching("Imp").tolist()} == {"Imp", "Implem"}
    assert not index.reaching("Imp").flags.writeable


def test_special_and_byte_piece_tokens_are_never_forced(
    tokenizer: Tokenizer, index: ForcedPrefixIndex
) -> None:
    texts = tokenizer.token_texts()
    allowed = set(index.allowed(" ").tolist()) | set(index.allowed("é").tolist())
    assert not allowed & set(tokenizer.special_tokens.values())
    assert not any("\ufffd" in texts[token] for token in allowed)


def test_advance_keeps_what_the_token_left_unwritten(
    tokenizer: Tokenizer, index: ForcedPrefixIndex
) -> None:
    (space,) = tokenizer.encode(" ")
    (self_token,) = tokenizer.encode(" self")
    assert index.advance(" se", space) == "se"
    assert index.advance(" se", self_token) == ""
    assert index.ends_on_blank(" ", space) and not index.ends_on_blank(" ", self_token)
    assert not index.ends_on_blank(" se", self_token)


def test_after_a_forced_blank_no_token_starts_with_a_blank(
    tokenizer: Tokenizer, index: ForcedPrefixIndex
) -> None:
    texts = tokenizer.token_texts()
    allowed = set(index.after_blank().tolist())
    assert allowed == {
        token for token, text in enumerate(texts) if not text.startswith((" ", "\t"))
    }
    assert tokenizer.eos_token_ids <= allowed  # the answer may still end there


def test_constrain_masks_everything_else() -> None:
    logits = np.array([3.0, 1.0, 2.0, 5.0], dtype=np.float32)
    masked = constrain(logits, np.array([1, 2]))
    assert int(np.argmax(masked)) == 2
    assert np.isneginf(masked[[0, 3]]).all() and masked[1] == 1.0
    assert logits[3] == 5.0  # a copy


def requests(tokenizer: Tokenizer) -> list[GenerationRequest]:
    texts = [
        ("class Stack:\n    def push(self, item):\n       ", " se"),
        ("import os\n", "fro"),
        ("def add(a, b):\n   ", " ret"),
        ("def f(x):\n    return x", ".up"),
        ("class", " "),
    ]
    return [
        GenerationRequest(
            prompt_ids=tuple(tokenizer.encode(prompt)),
            max_new_tokens=12,
            stop_token_ids=tokenizer.eos_token_ids,
            forced_prefix=forced,
        )
        for prompt, forced in texts
    ]


async def test_answers_start_with_the_forced_text_alone_and_the_same_in_a_batch() -> None:
    options = EngineOptions(device="cpu", threads=1, prefix_reuse=False)
    with Engine.load(default_model_dir(), options) as engine:
        batch = requests(engine.tokenizer)
        alone = [await engine.generate(request) for request in batch]
        again = [await engine.generate(request) for request in batch]
        together = await asyncio.gather(*(engine.generate(request) for request in batch))
        mean_batch = engine.stats()["mean_batch"]
    for request, result in zip(batch, alone, strict=True):
        assert result.text.startswith(request.forced_prefix), (request.forced_prefix, result.text)
        rest = result.text[len(request.forced_prefix) :]
        if request.forced_prefix.endswith(" "):
            assert not rest.startswith((" ", "\t")), result.text
    assert [r.token_ids for r in again] == [r.token_ids for r in alone]
    assert [r.token_ids for r in together] == [r.token_ids for r in alone]
    assert isinstance(mean_batch, float) and mean_batch > 1


async def test_no_forced_prefix_changes_nothing() -> None:
    options = EngineOptions(device="cpu", threads=1, prefix_reuse=False)
    with Engine.load(default_model_dir(), options) as engine:
        request = requests(engine.tokenizer)[0]
        plain = await engine.generate(
            GenerationRequest(request.prompt_ids, 12, stop_token_ids=request.stop_token_ids)
        )
        forced_empty = await engine.generate(
            GenerationRequest(
                request.prompt_ids, 12, stop_token_ids=request.stop_token_ids, forced_prefix=""
            )
        )
    assert forced_empty.token_ids == plain.token_ids


def test_a_word_after_a_space_is_one_space_and_then_no_blank(
    tokenizer: Tokenizer, index: ForcedPrefixIndex
) -> None:
    texts = tokenizer.token_texts()
    allowed = {texts[token] for token in index.space_then_word().tolist()}
    assert " self" in allowed and " (" in allowed
    assert all(text[0] == " " and not text[1].isspace() for text in allowed)
    assert not {" ", "  ", "\n", "self"} & allowed


async def test_after_a_left_out_space_the_answer_starts_with_it_and_a_word() -> None:
    options = EngineOptions(device="cpu", threads=1, prefix_reuse=False)
    prompts = ["def area(width, height):\n    return", "import os\nx = os.path.join(a,"]
    with Engine.load(default_model_dir(), options) as engine:
        tokenizer = engine.tokenizer
        results = [
            await engine.generate(
                GenerationRequest(
                    prompt_ids=tuple(tokenizer.encode(prompt)),
                    max_new_tokens=6,
                    stop_token_ids=tokenizer.eos_token_ids,
                    space_then_word=True,
                )
            )
            for prompt in prompts
        ]
    for result in results:
        assert result.text[:1] == " " and result.text[1:2].strip(), result.text
