"""Sampling is exact to transformers' distribution on the real model's logits.

For each prompt and setting of tests/golden/sampling_reference.json (transformers' own logits
processors, written by models/reference/make_sampling_reference.py), the engine's head (ONNX graph
on onnxruntime) and sampler draw N = 200,000 tokens; a χ² test compares the counts with the
reference: every candidate token with an expected count of at least 5 is a bin, the other
candidates share one, and the tokens beyond the candidates (drawn by the head itself) one more.

Power: with N draws the χ² statistic's noncentrality is at least 4·N·TV² (Cauchy-Schwarz), 800
for TV = 0.01, against a critical value under 300 at p = 1e-6 for the bins here; the negative
control (the old sampler, renormalising over the 64 candidates) must fail the same test.
The draws beyond the candidates are checked exactly: the head's tail token equals the definition
(tests/head_reference.py) on the same logits.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
from bisect import bisect_right
from pathlib import Path

import numpy as np
import pytest

from head_reference import reference_head
from intab.candidates import Candidates
from intab.config import GenerationConfig
from intab.sampling import candidates_needed, distribution, head_for

REF = Path(__file__).parent / "golden" / "sampling_reference.json"
N = 200_000
K = 64


def chi2_sf(x: float, df: int) -> float:
    """P(χ²_df > x): the regularized upper incomplete gamma Q(df/2, x/2)."""
    a, x = df / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    if x < a + 1:       # series for P, then 1 - P
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if term < total * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    b, c, d = x + 1 - a, 1e300, 1 / (x + 1 - a)   # continued fraction for Q (Lentz)
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = b + an / c
        c = c if abs(c) > 1e-300 else 1e-300
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_test(counts: dict, expected: dict) -> tuple[float, int, float]:
    stat = sum((counts.get(b, 0) - e) ** 2 / e for b, e in expected.items())
    df = len(expected) - 1
    return stat, df, chi2_sf(stat, df)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REF.read_text())["cases"]


@pytest.fixture(scope="module")
def backend(built_model_dir):
    from intab_host.ort_backend import OrtBackend
    return OrtBackend(built_model_dir / "model.onnx", json.loads((built_model_dir / "config.json").read_text()))


def step(backend, prompt, head):
    async def run():
        await backend.truncate(0)
        return await backend.forward(prompt, 0, head)
    return asyncio.run(run())


def bins_of(case, c: Candidates, probs_of):
    """Expected probabilities per bin: candidates with >= 5 expected draws, 'rare' candidates, 'beyond'."""
    ref = {int(k): v for k, v in case["probs"].items()}
    expected: dict = {}
    for t in c.ids:
        p = probs_of(ref, t)
        key = t if p * N >= 5 else "rare"
        expected[key] = expected.get(key, 0.0) + p
    expected["beyond"] = max(0.0, 1.0 - sum(expected.values()))
    return {b: p * N for b, p in expected.items() if p * N > 0 or b == "beyond"}


def draw_counts(ids, cum, whole, bins, rng) -> dict:
    counts: dict = {}
    for _ in range(N):
        i = bisect_right(cum, rng.random())
        if i < len(ids):
            t = ids[i]
            key = t if t in bins else "rare"
        else:
            key = "beyond" if not whole else (ids[-1] if ids[-1] in bins else "rare")
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_sampled_distribution_equals_transformers(reference, backend):
    rng = random.Random(20261201)
    worst = 1.0
    for case in reference:
        cfg = GenerationConfig.from_options(case["config"])
        k = candidates_needed(cfg, K, 49152)
        c = step(backend, case["prompt_ids"], head_for(cfg, k, case["prompt_ids"], None, None))
        ids, cum, whole = distribution(c, cfg)
        expected = bins_of(case, c, lambda ref, t: ref.get(t, 0.0))
        expected = {b: e for b, e in expected.items() if e >= 1e-9}
        counts = draw_counts(ids, cum, whole, expected, rng)
        assert set(counts) <= set(expected), (case["config"], set(counts) - set(expected))
        stat, df, p = chi2_test(counts, expected)
        tv = 0.5 * sum(abs(counts.get(b, 0) - e) / N for b, e in expected.items())
        print(f"{case['config']}: χ²={stat:.1f} df={df} p={p:.3g} TV={tv:.4f} beyond={expected.get('beyond', 0) / N:.4f}")
        worst = min(worst, p)
        assert p > 1e-6, (case["config"], stat, df, p, tv)
    print("smallest p:", worst)


def test_the_old_sampler_fails_the_same_test(reference, backend):
    """Negative control: renormalising over the 64 candidates (no tail, top_p over the candidates)
    is rejected at T = 1 on every prompt: the test has the power to see it."""
    rng = random.Random(7)
    for case in [c for c in reference if c["config"] == {"temperature": 1.0}]:
        cfg = GenerationConfig.from_options(case["config"])
        c = step(backend, case["prompt_ids"], head_for(cfg, K, case["prompt_ids"], None, None))
        old = Candidates(c.ids, c.logits, c.logsumexp)   # no lse_kept: renormalised among candidates
        ids, cum, whole = distribution(old, cfg)
        expected = bins_of(case, c, lambda ref, t: ref.get(t, 0.0))
        counts = draw_counts(ids, cum, whole, expected, rng)
        _, _, p = chi2_test(counts, expected)
        assert p < 1e-12, p


def test_draws_beyond_the_candidates_are_the_definition(reference, backend):
    V = 49152
    for case in [c for c in reference if c["config"].get("top_p", 1) == 1 and not c["config"].get("top_k")][:4]:
        cfg = GenerationConfig.from_options(case["config"])
        prompt = case["prompt_ids"]
        full = step(backend, prompt, V)
        z = np.empty(V, np.float64)
        z[list(full.ids)] = full.logits
        for u in (0.9991, 0.9995, 0.99993, 0.975, 0.9):
            h = head_for(cfg, K, prompt, None, None)
            h = type(h)(**{**h.__dict__, "draw": u})
            got = step(backend, prompt, h)
            want = reference_head(z, K, None, cfg.temperature, 1.0, cfg.min_p, 0, cfg.repetition_penalty,
                                  prompt if cfg.repetition_penalty != 1 else (), u)
            # float32 weights in the head: the token is the definition's for a draw within 1e-6 of u
            near = {reference_head(z, K, None, cfg.temperature, 1.0, cfg.min_p, 0, cfg.repetition_penalty,
                                   prompt if cfg.repetition_penalty != 1 else (), v)["tail"] for v in (u - 1e-6, u + 1e-6)}
            assert got.tail == want["tail"] or min(near) <= got.tail <= max(near), (case["config"], u, got.tail, want)
