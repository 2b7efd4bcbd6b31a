"""Samplers and logits processors over the candidate list: small pure functions, composed.

Shaped like mlx-lm: `make_logits_processors(cfg)` gives functions (history, candidates) ->
candidates; `make_sampler(cfg, rng)` gives a function candidates -> token id.

The graph returns the top-K of the whole vocabulary, so everything below is exact for the
candidates it sees. Two approximations, both about tokens outside the top-K:
- repetition_penalty only lowers scores, so it can only pull in tokens from beyond K when many
  of the K are penalized; those stay out.
- top_p needs the normalizer at the sampling temperature. At temperature 1 the graph's
  log-sum-exp makes it exact; otherwise the candidates are renormalized among themselves, which
  misses the tail mass beyond K (negligible for K=64 below temperature 1).
"""
from __future__ import annotations

import math
import random
from typing import Callable, Sequence

from .candidates import Candidates
from .config import GenerationConfig

LogitsProcessor = Callable[[Sequence[int], Candidates], Candidates]
Sampler = Callable[[Candidates], int]


def _sorted(ids: Sequence[int], logits: Sequence[float], logsumexp: float | None) -> Candidates:
    order = sorted(range(len(ids)), key=lambda i: -logits[i])
    return Candidates(tuple(ids[i] for i in order), tuple(logits[i] for i in order), logsumexp)


def repetition_penalty(penalty: float) -> LogitsProcessor:
    """transformers' RepetitionPenaltyLogitsProcessor: divide positive, multiply negative scores."""
    def process(history: Sequence[int], c: Candidates) -> Candidates:
        seen = set(history)
        logits = [(l / penalty if l > 0 else l * penalty) if t in seen else l for t, l in zip(c.ids, c.logits)]
        return _sorted(c.ids, logits, None)
    return process


def make_logits_processors(cfg: GenerationConfig) -> list[LogitsProcessor]:
    procs: list[LogitsProcessor] = []
    if cfg.repetition_penalty != 1.0:
        procs.append(repetition_penalty(cfg.repetition_penalty))
    return procs


def apply_processors(procs: Sequence[LogitsProcessor], history: Sequence[int], c: Candidates) -> Candidates:
    for p in procs:
        c = p(history, c)
    return c


def greedy(c: Candidates) -> int:
    return c.ids[0]


def apply_temperature(c: Candidates, temperature: float) -> Candidates:
    if temperature == 1.0:
        return c
    return Candidates(c.ids, tuple(l / temperature for l in c.logits), None)


def apply_top_k(c: Candidates, k: int) -> Candidates:
    return c if k <= 0 or k >= len(c) else Candidates(c.ids[:k], c.logits[:k], c.logsumexp)


def log_normalizer(c: Candidates) -> float:
    """The exact full-vocabulary normalizer when known, else the candidates' own."""
    if c.logsumexp is not None:
        return c.logsumexp
    m = c.logits[0]
    return m + math.log(sum(math.exp(l - m) for l in c.logits))


def apply_top_p(c: Candidates, top_p: float) -> Candidates:
    """Keep the smallest prefix whose probability mass reaches top_p (transformers' rule)."""
    if top_p >= 1.0:
        return c
    z = log_normalizer(c)
    mass, keep = 0.0, 0
    for l in c.logits:
        if keep > 0 and mass >= top_p:
            break
        mass += math.exp(l - z)
        keep += 1
    return Candidates(c.ids[:keep], c.logits[:keep], c.logsumexp)


def apply_min_p(c: Candidates, min_p: float) -> Candidates:
    """Drop tokens whose probability is below min_p times the top token's (normalizer-free)."""
    if min_p <= 0.0:
        return c
    floor = c.logits[0] + math.log(min_p)
    keep = sum(1 for l in c.logits if l >= floor)
    return Candidates(c.ids[:keep], c.logits[:keep], c.logsumexp)


def categorical(c: Candidates, rng: random.Random) -> int:
    m = c.logits[0]
    weights = [math.exp(l - m) for l in c.logits]
    r = rng.random() * sum(weights)
    for token, w in zip(c.ids, weights):
        r -= w
        if r < 0:
            return token
    return c.ids[-1]


def make_sampler(cfg: GenerationConfig, rng: random.Random) -> Sampler:
    if cfg.greedy:
        return greedy

    def sample(c: Candidates) -> int:
        c = apply_temperature(c, cfg.temperature)
        c = apply_top_k(c, cfg.top_k)
        c = apply_top_p(c, cfg.top_p)
        c = apply_min_p(c, cfg.min_p)
        return categorical(c, rng)
    return sample


def candidates_needed(cfg: GenerationConfig, default: int, vocab_size: int) -> int:
    """How many candidates the graph must return for this config."""
    if cfg.greedy and cfg.repetition_penalty == 1.0:
        return 1
    return min(vocab_size, max(default, cfg.top_k))
