"""Sampling over the head's candidates, exact to transformers' distribution.

Shaped like mlx-lm: small functions composed. The order is transformers' (`generate` with
do_sample): RepetitionPenalty, then Temperature, TopK, TopP, MinP warpers, then a categorical draw.

What makes it exact although only a few candidates cross from the model (docs/contracts.md §1):
- the repetition penalty and the constraint's mask are applied by the head, over the whole
  vocabulary, before its top-K: `head_for(cfg, ...)` asks for them;
- the normaliser at the sampling temperature comes from the head (`lse_t`), over the whole
  vocabulary, so top_p's cut is the real one; with top_p < 1 the head returns every token of
  the nucleus (the candidates then hold all of the kept mass);
- with top_p = 1 and no top_k the kept mass is spread over the whole vocabulary. The tokens
  beyond the top-K are not negligible (0.5-11% of the mass at T = 0.8 on real prompts, 0.8-27%
  at T = 1), so the draw is exact: the sampler draws u before the step, the head walks the same
  u through the kept distribution and returns the token it lands on when that lies beyond the
  candidates (`Candidates.tail`); the sampler takes it then.
User logits processors (engine hooks) act on the candidates only.
"""
from __future__ import annotations

import math
import random
from bisect import bisect_right
from typing import Callable, Sequence

from .backend import Head
from .candidates import Candidates
from .config import GenerationConfig

LogitsProcessor = Callable[[Sequence[int], Candidates], Candidates]
Sampler = Callable[[Candidates], int]


def _sorted(ids: Sequence[int], logits: Sequence[float], c: Candidates) -> Candidates:
    order = sorted(range(len(ids)), key=lambda i: (-logits[i], ids[i]))
    return Candidates(tuple(ids[i] for i in order), tuple(logits[i] for i in order), None,
                      temperature=c.temperature, draw=c.draw)


def repetition_penalty(penalty: float) -> LogitsProcessor:
    """transformers' RepetitionPenaltyLogitsProcessor over the candidates only (the head applies
    it over the whole vocabulary; this is for backends without a head that does)."""
    def process(history: Sequence[int], c: Candidates) -> Candidates:
        seen = set(history)
        logits = [(l / penalty if l > 0 else l * penalty) if t in seen else l for t, l in zip(c.ids, c.logits)]
        return _sorted(c.ids, logits, c)
    return process


def make_logits_processors(cfg: GenerationConfig) -> list[LogitsProcessor]:
    """Processors the engine runs on the candidates: none of its own (the head applies the
    repetition penalty); user processors are added by the engine."""
    return []


def apply_processors(procs: Sequence[LogitsProcessor], history: Sequence[int], c: Candidates) -> Candidates:
    for p in procs:
        c = p(history, c)
    return c


def candidates_needed(cfg: GenerationConfig, default: int, vocab_size: int) -> int:
    """How many candidates the head must return for this config (at least)."""
    if cfg.greedy:
        return 1
    return min(vocab_size, max(default, cfg.top_k))


def head_for(cfg: GenerationConfig, k: int, history: Sequence[int], mask: bytes | None,
             rng: random.Random | None, skip_disallowed: bool = False) -> Head:
    """The head request of one step; draws the step's uniform number when sampling."""
    draw = rng.random() if (rng is not None and not cfg.greedy) else -1.0
    return Head(k=k, mask=mask, temperature=cfg.temperature if not cfg.greedy else 1.0,
                top_p=cfg.top_p if not cfg.greedy else 1.0, min_p=cfg.min_p if not cfg.greedy else 0.0,
                top_k=cfg.top_k if not cfg.greedy else 0, penalty=cfg.repetition_penalty,
                penalized=tuple(sorted(set(history))) if cfg.repetition_penalty != 1.0 else (),
                draw=draw, skip_disallowed=skip_disallowed)


def greedy(c: Candidates) -> int:
    return c.ids[0]


def _lse(xs: Sequence[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def kept_candidates(c: Candidates, cfg: GenerationConfig) -> tuple[list[float], bool]:
    """(scores s/T of the candidates the warpers keep, whether they hold all of the kept mass)."""
    t = cfg.temperature
    scores = [l / t for l in c.logits]
    whole = False
    if cfg.top_k > 0:
        scores = scores[:cfg.top_k]
        whole = True
    if cfg.top_p < 1.0:
        if whole or c.lse_t is None:
            z = _lse(scores)
        else:
            z = c.lse_t
        mass, keep = 0.0, 0
        for s in scores:
            if keep > 0 and mass >= cfg.top_p:
                break
            mass += math.exp(s - z)
            keep += 1
        scores = scores[:keep]
        whole = True
    if cfg.min_p > 0.0:
        floor = scores[0] + math.log(cfg.min_p)
        scores = [s for s in scores if s >= floor]
    if c.lse_kept is None:       # a head that cannot draw beyond its candidates
        whole = True
    return scores, whole


def distribution(c: Candidates, cfg: GenerationConfig) -> tuple[tuple[int, ...], list[float], bool]:
    """(kept candidate ids, their cumulative probabilities, whether they hold all the kept mass):
    the sampled distribution over the candidates; the rest of the mass (1 - cumulative[-1]) is the
    head's, beyond the candidates."""
    scores, whole = kept_candidates(c, cfg)
    z = _lse(scores) if whole else c.lse_kept
    cum, acc = [], 0.0
    for s in scores:
        acc += math.exp(s - z)
        cum.append(acc)
    return c.ids[:len(scores)], cum, whole


def exact_draw(c: Candidates, cfg: GenerationConfig, u: float) -> int:
    """The token the uniform number u picks: inverse CDF over the kept candidates (descending),
    then beyond them the head's draw of the same u (`c.tail`)."""
    ids, cum, whole = distribution(c, cfg)
    i = bisect_right(cum, u)
    if i < len(ids):
        return ids[i]
    if not whole and c.tail >= 0:
        return c.tail
    return ids[-1]   # rounding at the very end of the distribution


def make_sampler(cfg: GenerationConfig, rng: random.Random) -> Sampler:
    if cfg.greedy:
        return greedy

    def sample(c: Candidates) -> int:
        u = c.draw if c.draw is not None else rng.random()
        return exact_draw(c, cfg, u)
    return sample


# Kept for callers of the warpers one by one (tests, user code).
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
    return _lse(c.logits)


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
