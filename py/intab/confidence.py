"""How sure the model was: per token and per answer, from the candidates and the full log-sum-exp.

What it measures: the model's own next-token distribution at temperature 1, before penalties,
constraints and sampling (the same distribution `logprobs` report):
- `logprob`: log p of the token that was emitted (None when it was not among the candidates,
  which only a user sampler can make happen);
- `top_logprob` and `margin`: log p of the most likely token, and how far ahead of the second it is
  (log p1 - log p2, in nats; None when only one candidate came back);
- `entropy` (nats) over the K candidates with the rest of the vocabulary counted as one outcome of
  mass `tail_mass`. Merging outcomes can only lower entropy, so this is a lower bound of the true
  entropy, exact when `tail_mass` is 0, and never more than `tail_mass * log(vocab)` below it.
What it does not measure: whether the answer is true. A small model can be confidently wrong;
a low margin or a high entropy says the model itself hesitated, which is the signal a hybrid
app uses to hand the question to a bigger model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from .candidates import Candidates


@dataclass(frozen=True)
class TokenConfidence:
    logprob: float | None
    top_logprob: float
    margin: float | None
    entropy: float
    tail_mass: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnswerConfidence:
    tokens: int
    mean_logprob: float | None      # log of the geometric mean of the emitted tokens' probabilities
    min_logprob: float | None
    mean_entropy: float | None
    max_entropy: float | None
    mean_margin: float | None
    min_margin: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def token_confidence(c: Candidates, token: int) -> TokenConfidence:
    z = c.logsumexp
    lps = [l - z for l in c.logits]
    probs = [math.exp(lp) for lp in lps]
    covered = min(1.0, sum(probs))
    tail = max(0.0, 1.0 - covered)
    entropy = -sum(p * lp for p, lp in zip(probs, lps) if p > 0) - (tail * math.log(tail) if tail > 0 else 0.0)
    try:
        logprob: float | None = lps[c.ids.index(token)]
    except ValueError:
        logprob = None
    return TokenConfidence(
        logprob=logprob,
        top_logprob=lps[0],
        margin=(lps[0] - lps[1]) if len(lps) > 1 else None,
        entropy=max(0.0, entropy),
        tail_mass=tail,
    )


def summarize(per_token: Sequence[TokenConfidence]) -> AnswerConfidence:
    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    lps = [t.logprob for t in per_token if t.logprob is not None]
    ents = [t.entropy for t in per_token]
    margins = [t.margin for t in per_token if t.margin is not None]
    return AnswerConfidence(
        tokens=len(per_token),
        mean_logprob=mean(lps), min_logprob=min(lps) if lps else None,
        mean_entropy=mean(ents), max_entropy=max(ents) if ents else None,
        mean_margin=mean(margins), min_margin=min(margins) if margins else None,
    )
