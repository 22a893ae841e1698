"""The workspace n-gram: longest suffix matches and how much they move the model."""

from __future__ import annotations

import numpy as np

from inference.forcing import constrain
from inference.ngram import Match, MixingWeights, NgramMixer, TokenSuffixIndex, Without

SEP = 9999


def _index(*docs: list[int]) -> TokenSuffixIndex:
    return TokenSuffixIndex.from_documents(list(docs), separator=SEP)


def test_longest_suffix_and_its_continuation() -> None:
    index = _index([1, 2, 3, 4, 5], [7, 2, 3, 4, 6])
    match = index.longest_match([9, 1, 2, 3, 4])
    assert match is not None
    assert (match.length, match.counts) == (4, {5: 1})


def test_a_shorter_suffix_counts_every_continuation() -> None:
    index = _index([1, 2, 3, 4, 5], [7, 2, 3, 4, 6])
    match = index.longest_match([8, 2, 3, 4])
    assert match is not None
    assert (match.length, match.counts, match.occurrences) == (3, {5: 1, 6: 1}, 2)


def test_a_match_at_the_end_of_a_document_has_no_continuation() -> None:
    # The tokens before the cursor are in the buffer's own prefix: that occurrence is followed by
    # the separator and must not predict anything.
    index = _index([5, 6, 7, 8], [1, 2, 7, 8, 3])
    match = index.longest_match([5, 6, 7, 8])
    assert match is not None
    assert (match.length, match.counts) == (2, {3: 1})


def test_nothing_found() -> None:
    assert _index([1, 2, 3]).longest_match([42]) is None
    assert _index().longest_match([1]) is None
    assert _index([1, 2]).longest_match([]) is None


def test_killed_documents_stop_counting() -> None:
    index = _index([1, 2, 3, 4], [1, 2, 3, 9])
    index.kill(0, 5)  # the first document and its separator
    match = index.longest_match([1, 2, 3])
    assert match is not None
    assert match.counts == {9: 1}


def test_ids_above_uint16_are_kept_whole() -> None:
    index = _index([70000, 70001, 70002], [5, 70001, 70003])
    match = index.longest_match([70000, 70001])
    assert match is not None
    assert match.counts == {70002: 1}


def test_weight_grows_with_length_and_agreement_and_the_models_doubt() -> None:
    weights = MixingWeights()
    long_pure = Match(12, {5: 3}, 3)
    short = Match(2, {5: 3}, 3)
    ambiguous = Match(12, {5: 1, 6: 1, 7: 1}, 3)
    assert weights.weight(short, entropy=3.0) == 0.0
    assert weights.weight(long_pure, 3.0) > weights.weight(ambiguous, 3.0)
    assert weights.weight(long_pure, 3.0) > weights.weight(long_pure, 0.1) > 0.0


def test_mixer_turns_a_long_match_into_the_choice_and_follows_accepted_tokens() -> None:
    doc = list(range(100, 130))
    mixer = NgramMixer((_index(doc),), context=doc[:12])
    logits = np.zeros(200, dtype=np.float32)
    logits[50] = 3.0  # the model prefers something else, mildly
    assert int(np.argmax(mixer.mix(logits))) == 112
    mixer.accept(112)
    assert int(np.argmax(mixer.mix(logits))) == 113
    assert mixer.mixed_steps == 2


def test_mixer_leaves_a_sure_model_alone_on_a_short_match() -> None:
    mixer = NgramMixer((_index([1, 2, 3, 4]),), context=[2, 3])
    logits = np.zeros(10, dtype=np.float32)
    logits[7] = 10.0
    assert np.array_equal(mixer.mix(logits), logits)


def test_the_current_buffer_wins_a_tie() -> None:
    buffer = _index([1, 2, 3, 4])
    workspace = _index([1, 2, 3, 5])
    mixer = NgramMixer((buffer, workspace), context=[1, 2, 3])
    match = mixer.best_match()
    assert match is not None and match.counts == {4: 1}


def test_the_suffix_array_orders_every_suffix_of_narrow_and_wide_tokens() -> None:
    rng = np.random.default_rng(7)
    for high in (5, 70_000):  # few distinct ids (long shared prefixes), and ids past uint16
        tokens = rng.integers(0, high, size=400)
        index = TokenSuffixIndex(tokens, separator=high)
        expected = sorted(range(len(tokens)), key=lambda i: tokens[i:].tolist())
        assert index.suffix_array.tolist() == expected
        assert index.tokens.tolist() == tokens.tolist()


def test_a_document_left_out_of_an_index_predicts_nothing() -> None:
    # The current buffer sits whole in the workspace index; searched through Without, its own
    # tokens (after the cursor) do not count, and the rest of the index still does.
    index = _index([1, 2, 3, 4], [1, 2, 3, 9])
    whole = index.longest_match([1, 2, 3])
    assert whole is not None and whole.counts == {4: 1, 9: 1}
    match = Without(index, 0, 5).longest_match([1, 2, 3])
    assert match is not None and match.counts == {9: 1}
    assert Without(index, 0, 10).longest_match([1, 2, 3]) is None


def test_a_forced_text_keeps_only_the_continuations_that_write_it() -> None:
    # After [1, 2] the index has 3 many times and 4 once; only 4 can write the forced text.
    index = _index(*([[1, 2, 3]] * 200), [1, 2, 4])
    match = index.longest_match([7, 1, 2], allowed=np.array([4, 5]))
    assert match is not None
    assert (match.length, match.counts) == (2, {4: 1})
    assert index.longest_match([7, 1, 2]) is not None


def test_a_forced_text_backs_off_to_the_longest_suffix_it_follows() -> None:
    # [8, 1, 2] is followed only by 3; the shorter [1, 2] is also followed by 4 elsewhere.
    index = _index([8, 1, 2, 3], [9, 1, 2, 4])
    match = index.longest_match([8, 1, 2], allowed=np.array([4]))
    assert match is not None
    assert (match.length, match.counts) == (2, {4: 1})
    assert index.longest_match([8, 1, 2], allowed=np.array([6])) is None


def test_a_large_allowed_set_filters_the_sample_and_skips_the_buffer() -> None:
    index = _index([1, 2, 3], [1, 2, 4])
    wide = np.arange(3, 90)
    match = index.longest_match([1, 2], allowed=wide)
    assert match is not None
    assert match.counts == {3: 1, 4: 1}
    found = Without(index, 0, 4).longest_match([1, 2], allowed=np.array([3, 4]))
    assert found is not None
    assert (found.length, found.counts, found.occurrences) == (2, {4: 1}, 2)


def test_forced_mixing_moves_the_choice_among_the_allowed_tokens_only() -> None:
    doc = list(range(100, 130))
    mixer = NgramMixer((_index(doc),), context=doc[:12])
    logits = np.zeros(200, dtype=np.float32)
    logits[150] = 5.0  # outside what the forced text allows
    allowed = np.array([112, 149])
    mixed = constrain(mixer.mix(logits, allowed=allowed), allowed)  # as the sampler does
    assert int(np.argmax(mixed)) == 112


def test_the_step_after_a_forced_one_searches_the_whole_length_again() -> None:
    # Under the forced text only the short [2] is followed by an allowed token (4); once 3 is
    # accepted (the model's choice), the match is the long one again, not bounded by that.
    doc = [1, 2, 3, 5, 6]
    index = _index(doc, [9, 2, 4])
    mixer = NgramMixer((index,), context=[1, 2])
    logits = np.zeros(20, dtype=np.float32)
    mixer.mix(logits, allowed=np.array([4]))
    mixer.accept(3)
    match = mixer.best_match()
    assert match is not None
    assert (match.length, match.counts) == (3, {5: 1})


def test_searching_inside_the_last_match_finds_what_a_search_from_scratch_finds() -> None:
    rng = np.random.default_rng(3)
    # A small alphabet, so that long and short, pure and ambiguous matches all occur.
    docs = [rng.integers(0, 6, size=400).tolist() for _ in range(5)]
    buffer = _index(docs[0][:200])
    workspace = _index(*docs[1:])
    for trial in range(20):
        context = docs[1 + trial % 4][trial * 7 : trial * 7 + 30]
        hinted = NgramMixer((buffer, workspace), context=list(context))
        for token in rng.integers(0, 6, size=25).tolist():
            fresh = NgramMixer((buffer, workspace), context=list(hinted.context))
            got, want = hinted.best_match(), fresh.best_match()
            assert (got is None) == (want is None)
            if got is not None and want is not None:
                assert (got.length, got.counts, got.occurrences) == (
                    want.length,
                    want.counts,
                    want.occurrences,
                )
            hinted.accept(token)


def test_the_mixed_logits_are_the_log_of_the_interpolated_distribution() -> None:
    rng = np.random.default_rng(5)
    doc = list(range(100, 130))
    mixer = NgramMixer((_index(doc, [*doc[:12], 140]),), context=doc[:12])
    logits = rng.standard_normal(200).astype(np.float32)
    logits[7] = -np.inf  # a token banned upstream stays impossible
    match = mixer.best_match()
    assert match is not None
    mixer._grown = 0  # the next mix searches from scratch again
    mixed = mixer.mix(logits)
    probs = np.exp(logits.astype(np.float64) - logits[np.isfinite(logits)].max())
    probs /= probs.sum()
    entropy = float(-(probs[probs > 0] * np.log(probs[probs > 0])).sum())
    weight = MixingWeights().weight(match, entropy)
    want = probs * (1 - weight)
    for token, count in match.counts.items():
        want[token] += weight * count / sum(match.counts.values())
    got = np.exp(mixed.astype(np.float64))
    assert abs(got.sum() - 1.0) < 1e-4
    assert np.allclose(got, want, atol=1e-5)
    assert got[7] == 0.0
