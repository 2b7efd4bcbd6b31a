"""The seam between the Python engine and whatever runs the graph (docs/contracts.md §1, §3)."""
from __future__ import annotations

from typing import Protocol, Sequence

from .candidates import Candidates


class Backend(Protocol):
    """Runs the decoder graph and owns the KV cache (which never crosses into Python)."""

    name: str              # e.g. "onnxruntime-cpu", "webgpu", "wasm"

    @property
    def kv_length(self) -> int:
        """Tokens currently held in the KV cache."""

    async def forward(self, ids: Sequence[int], start: int, num_candidates: int) -> Candidates:
        """Feed `ids` at positions start.. (start must equal kv_length); return the last position's top-K."""

    async def truncate(self, length: int) -> None:
        """Keep the first `length` positions of the KV cache (0 = empty)."""
