"""The few numbers that cross from the model's head to Python per step (docs/contracts.md §1, §3)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidates:
    """The head's top tokens of the last position, sorted by descending logit.

    `logits` are the scores the sampler starts from: the model's logits after the head's
    repetition penalty, among the tokens the mask allows (at least `Head.k` of them, and the
    whole nucleus when the head was asked for top_p < 1). Log-sum-exps, all over the vocabulary:
    - `logsumexp`: of the raw logits, unconstrained (`logit - logsumexp` is the model's own
      log-probability at temperature 1; NaN when the head skipped the disallowed rows);
    - `lse_allowed`: of the scores over the allowed tokens (log-probabilities under the constraint);
    - `lse_t`: of scores / temperature over the allowed tokens (the sampling normaliser);
    - `lse_kept`: the same over the tokens min_p keeps (the normaliser of the draw).
    `tail`: the token the head's uniform draw `draw` picked beyond the candidates (-1: none).
    """
    ids: tuple[int, ...]
    logits: tuple[float, ...]
    logsumexp: float | None
    lse_allowed: float | None = None
    lse_t: float | None = None
    lse_kept: float | None = None
    tail: int = -1
    draw: float | None = None
    temperature: float = 1.0

    def __len__(self) -> int:
        return len(self.ids)
