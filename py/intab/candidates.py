"""The few numbers that cross from the graph to Python per step: the top-K of the last position."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidates:
    """Top-K candidates, sorted by descending logit.

    `logsumexp` is log(sum(exp(logits))) over the whole vocabulary, so
    `logit - logsumexp` is the exact log-probability of a candidate at temperature 1.
    """
    ids: tuple[int, ...]
    logits: tuple[float, ...]
    logsumexp: float

    def __len__(self) -> int:
        return len(self.ids)
