"""The seam between the Python engine and whatever runs the model (docs/contracts.md §1, §3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from .candidates import Candidates


@dataclass(frozen=True)
class Head:
    """What the sampling head computes over the last position's logits (docs/contracts.md §1).

    `mask`: ⌈vocab/32⌉ little-endian uint32 words, bit i = token i allowed (None: all). The
    head applies the repetition penalty (transformers' rule) to `penalized`, then the mask, and
    returns the top `k` (and, with top_p < 1, the whole nucleus at `temperature`). When top_p is 1
    and top_k 0, `draw` (a uniform number in [0, 1) the sampler drew) picks a token from the whole
    kept distribution, so the sampler can take one beyond the candidates exactly.
    `skip_disallowed`: the head may skip the output rows of masked tokens (sparse masks); the
    unconstrained logsumexp is then not computed (NaN).
    """
    k: int = 1
    mask: bytes | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    min_p: float = 0.0
    top_k: int = 0
    penalty: float = 1.0
    penalized: tuple[int, ...] = ()
    draw: float = -1.0
    skip_disallowed: bool = False


class Backend(Protocol):
    """Runs the model and owns the KV cache (which never crosses into Python)."""

    name: str              # e.g. "onnxruntime-cpu", "webgpu", "wasm"

    @property
    def kv_length(self) -> int:
        """Tokens currently held in the KV cache."""

    async def forward(self, ids: Sequence[int], start: int, head: Head | int) -> Candidates:
        """Feed `ids` at positions start.. (start must equal kv_length); return the last position's
        candidates as `head` asks (an int: the plain top-k)."""

    async def truncate(self, length: int) -> None:
        """Keep the first `length` positions of the KV cache (0 = empty)."""


def as_head(head: Head | int) -> Head:
    return head if isinstance(head, Head) else Head(k=int(head))
