"""Token choice and incremental text with stop strings (pure logic, no model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from inference.sampling import Sampler, TextTracker, cut_at_stop

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


def test_stop_string_across_tokens_is_cut_and_never_streamed() -> None:
    tracker = TextTracker(toy_decode, stop_strings=("\n    return",))
    streamed = ""
    for token in (1, 2, 3, 4, 5):
        assert not tracker.push(token)
        streamed += tracker.take_delta()
    # "\n    " could be the start of the stop string: held back
    assert streamed == "def f():"
    assert tracker.push(6)
    streamed += tracker.take_delta(final=True)
    assert streamed == tracker.text == "def f():"


def test_held_back_text_is_released_when_it_is_not_a_stop() -> None:
    tracker = TextTracker(toy_decode, stop_strings=("\n\n",))
    tracker.push(1)
    tracker.push(4)
    assert tracker.take_delta() == "def"
    tracker.push(5)
    assert tracker.take_delta() == "\n    "


def test_unfinished_character_waits_for_its_second_byte() -> None:
    tracker = TextTracker(toy_decode)
    tracker.push(1)
    tracker.push(9)
    assert tracker.take_delta() == "def"
    tracker.push(10)
    assert tracker.take_delta() == "é"


def test_cut_at_stop_takes_the_earliest() -> None:
    assert cut_at_stop("a#b\nc", ("\n", "#")) == ("a", True)
    assert cut_at_stop("abc", ("x",)) == ("abc", False)
