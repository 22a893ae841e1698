"""Token choice and incremental text with stop strings (pure logic, no model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from inference.sampling import Sampler, TextTracker

# a toy vocabulary: id -> text piece; 9 is half of a two-byte character
PIECES = {1: "def", 2: " f", 3: "():", 4: "\n", 5: "    ", 6: "return", 7: " 1", 8: "#"}


def toy_decode(ids: Sequence[int]) -> str:
    text = "".join(PIECES.get(i, "") for i in ids if i not in (9, 10))
    if ids and ids[-1] == 9:
        return text + "\ufffd"
    if 9 in ids and 10 in ids:
        text += "é"
    return text


def test_greedy_is_argmax() -> None:
    assert Sampler()(np.array([0.1, 3.0, 2.9])) == 1


def test_tiny_top_p_is_greedy_and_seed_repeats() -> None:
    logits = np.random.default_rng(0).normal(size=64)
    assert Sampler(temperature=1.0, top_p=1e-9, seed=3)(logits) == int(np.argmax(logits))
    draws = [[Sampler(temperature=1.5, seed=s)(logits) for _ in range(1)] for s in range(12)]
    assert draws == [[Sampler(temperature=1.5, seed=s)(logits)] for s in range(12)]
    assert len({d[0] for d in draws}) > 1  # different seeds, different draws


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    sampler = Sampler(temperature=1.0, top_p=0.7, seed=0)
    assert {sampler(logits) for _ in range(200)} == {0, 1}


def test_invalid_settings_name_the_range() -> None:
    with pytest.raises(ValueError, match="temperature"):
        Sampler(temperature=-1)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        Sampler(top_p=0)


def test_stop_string_across_tokens_is_cut() -> None:
    tracker = TextTracker(toy_decode, stop_strings=("\n    return",))
    for token in (1, 2, 3, 4, 5):
        assert not tracker.push(token)
    assert tracker.push(6)
    assert tracker.stopped and tracker.text == "def f():"


def test_unfinished_character_waits_for_its_second_byte() -> None:
    tracker = TextTracker(toy_decode)
    tracker.push(1)
    tracker.push(9)
    assert tracker.text == "def"
    tracker.push(10)
    assert tracker.text == "defé"
