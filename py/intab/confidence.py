"""Confidence of an answer, from what the head returns per step: the top-K candidates and the
log-sum-exp of all the logits (docs/python.md, "Confidence").

Per token, at temperature 1 over the whole vocabulary (the model's own distribution, before any
sampling option or processor):
- logprob: the chosen token's log-probability, exact (logit - logsumexp); None when the token is
  not among the candidates (a user's sampler picked beyond them);
- margin: p(top-1) - p(top-2), exact;
- entropy: -sum p log p over the K candidates, in nats: a lower bound of the true entropy, exact up
  to what the tail (tail_mass = 1 - the candidates' mass, also exact) adds, at most
  tail_mass * log(vocab_size / tail_mass).
Per answer: mean, min and max of entropy and margin, and the lowest token probability.
What it is not: a measure of truth. A small model is often confidently wrong; low values say
the model was unsure between continuations, which is when a bigger model is worth asking.
"""
from __future__ import annotations

import math
from typing import Sequence

from .candidates import Candidates


def step_stats(c: Candidates, token: int, top: int = 0) -> dict:
    """What one decode step says about itself (see the module docstring)."""
    z = c.logsumexp
    probs = [math.exp(l - z) for l in c.logits]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    try:
        logprob: float | None = c.logits[c.ids.index(token)] - z
    except ValueError:
        logprob = None
    return {
        "id": token,
        "logprob": logprob,
        "entropy": entropy,
        "margin": probs[0] - (probs[1] if len(probs) > 1 else 0.0),
        "tail_mass": max(0.0, 1.0 - sum(probs)),
        "top": [(c.ids[i], c.logits[i] - z) for i in range(min(top, len(c)))],
    }


def summarize(steps: Sequence[dict]) -> dict | None:
    """Per answer: mean/min/max of entropy and margin, the lowest token probability, the count."""
    if not steps:
        return None
    ent = [s["entropy"] for s in steps]
    mar = [s["margin"] for s in steps]
    lps = [s["logprob"] for s in steps if s["logprob"] is not None]
    return {
        "tokens": len(steps),
        "entropy": {"mean": sum(ent) / len(ent), "min": min(ent), "max": max(ent)},
        "margin": {"mean": sum(mar) / len(mar), "min": min(mar), "max": max(mar)},
        "min_token_prob": math.exp(min(lps)) if lps else None,
    }
