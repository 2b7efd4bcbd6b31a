"""Samplers and logits processors against their definitions (transformers' processors)."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from intab.candidates import Candidates
from intab.config import GenerationConfig
from intab.errors import InvalidParameter
from intab.sampling import (apply_min_p, apply_top_k, apply_top_p, candidates_needed, make_sampler,
                            repetition_penalty)


def cands(logits, ids=None, lse=None):
    ids = ids or list(range(len(logits)))
    return Candidates(tuple(ids), tuple(float(x) for x in logits), lse)


def full_lse(logits):
    m = max(logits)
    return m + math.log(sum(math.exp(x - m) for x in logits))


def test_greedy_takes_the_top_candidate():
    c = cands([5.0, 4.0, 1.0], [7, 3, 9])
    assert make_sampler(GenerationConfig(temperature=0), random.Random(0))(c) == 7


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    c = cands([4.0, 3.0, -1.0], [10, 11, 12])
    out = repetition_penalty(2.0)([10, 12], c)
    assert dict(zip(out.ids, out.logits)) == {10: 2.0, 11: 3.0, 12: -2.0}
    assert out.ids == (11, 10, 12)  # re-sorted


def test_top_k_and_min_p():
    c = cands([3.0, 2.0, 1.0, 0.0])
    assert apply_top_k(c, 2).ids == (0, 1)
    assert apply_top_k(c, 0).ids == c.ids
    # min_p: keep p >= 0.3 * p_max  <=>  logit >= 3 + ln 0.3 = 1.796
    assert apply_min_p(c, 0.3).ids == (0, 1)


def test_top_p_matches_transformers_rule_with_full_vocab_normalizer():
    logits = [2.0, 1.0, 0.5, 0.0, -1.0]
    # the candidates are the top 3 of a 5-token vocabulary: the normalizer covers all 5
    c = cands(logits[:3], lse=full_lse(logits))
    probs = [math.exp(x - full_lse(logits)) for x in logits]
    # transformers keeps a token while the mass before it is < top_p
    for top_p in (0.3, 0.6, 0.8, 0.95):
        expect = [i for i in range(3) if sum(probs[:i]) < top_p]
        assert list(apply_top_p(c, top_p).ids) == expect, top_p


def test_seeded_sampling_is_reproducible_and_follows_the_distribution():
    c = cands([1.0, 0.0, -1.0])
    cfg = GenerationConfig(temperature=1.0, seed=3)
    a = [make_sampler(cfg, random.Random(3))(c) for _ in range(5)]
    b = [make_sampler(cfg, random.Random(3))(c) for _ in range(5)]
    assert a == b
    rng = random.Random(1)
    sample = make_sampler(cfg, rng)
    counts = Counter(sample(c) for _ in range(20000))
    z = sum(math.exp(x) for x in (1.0, 0.0, -1.0))
    for token, logit in zip(c.ids, c.logits):
        assert abs(counts[token] / 20000 - math.exp(logit) / z) < 0.02


def test_low_temperature_concentrates_mass():
    c = cands([1.0, 0.9])
    sample = make_sampler(GenerationConfig(temperature=0.01), random.Random(0))
    assert all(sample(c) == 0 for _ in range(200))


@pytest.mark.parametrize("options", [
    {"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"min_p": 1}, {"top_k": -2}, {"top_k": 2.5},
    {"max_tokens": 0}, {"repetition_penalty": 0}, {"seed": "x"}, {"stop": [""]}, {"temperature": "hot"},
    {"temperature": float("nan")}, {"bogus": 1},
])
def test_invalid_options_raise_a_named_error(options):
    with pytest.raises(InvalidParameter) as err:
        GenerationConfig.from_options(options)
    name = next(iter(options))
    assert name in str(err.value)


def test_options_merge_over_model_defaults():
    cfg = GenerationConfig.from_options({"top_p": 0.5, "stop": "###"}, {"temperature": 0.0, "max_new_tokens": 7})
    assert (cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.stop) == (0.0, 0.5, 7, ("###",))


def test_candidates_needed():
    assert candidates_needed(GenerationConfig(temperature=0), 64, 1000) == 1
    assert candidates_needed(GenerationConfig(temperature=0.7), 64, 1000) == 64
    assert candidates_needed(GenerationConfig(temperature=0.7, top_k=200), 64, 1000) == 200
    assert candidates_needed(GenerationConfig(temperature=0.7, top_k=5000), 64, 1000) == 1000
