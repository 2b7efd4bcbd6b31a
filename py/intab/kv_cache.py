"""Which token ids the backend's KV cache holds, and snapshots of other conversations' caches.

One engine serves many conversations (every Prompt API session, every `<intab-chat>` element).
The backend holds one live KV cache; a request reuses its longest common prefix with the prompt.
When a request belongs to another conversation, the live cache is about to lose its tail: it is
snapshotted first (the kernel copies the rows out, 46 KB a token for SmolLM2-135M; onnxruntime
keeps the tensors themselves), and a snapshot that shares a longer prefix with the prompt is
restored instead of prefilling again. Snapshots are kept least-recently-used within a byte
budget. Measured on the kernel (tests/browser/test_client.py prints it): restoring a ~300-token
conversation takes a few milliseconds, where prefilling it again takes about a second.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

SWITCH_MIN_TOKENS = 16     # a snapshot must beat the live prefix by this much to be worth a restore
KEEP_MIN_TOKENS = 32       # shorter caches are cheaper to prefill again than to keep


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Snapshot:
    ids: tuple[int, ...]
    handle: Any          # the backend's snapshot: .bytes, .release()
    bytes: int
    used: int


@dataclass
class Prepared:
    reused: int          # prompt tokens whose KV is in the cache now
    restored: int        # of which came from a snapshot (0: the live cache)
    kv_ms: float         # time spent saving and restoring snapshots


class KVCache:
    def __init__(self, backend: Any, budget_bytes: int = 128 << 20):
        self.backend = backend
        self.budget_bytes = budget_bytes
        self.ids: list[int] = []       # token ids whose KV the backend holds
        self._snaps: list[_Snapshot] = []
        self._clock = 0

    @property
    def snapshots(self) -> int:
        return len(self._snaps)

    @property
    def snapshot_bytes(self) -> int:
        return sum(s.bytes for s in self._snaps)

    def _can_snapshot(self) -> bool:
        return self.budget_bytes > 0 and hasattr(self.backend, "snapshot") and hasattr(self.backend, "restore")

    async def prepare(self, prompt: Sequence[int]) -> Prepared:
        """Make the backend hold the longest prefix of `prompt` it can (at most len(prompt) - 1
        tokens, so that at least one is fed) and return how many tokens that is."""
        t0 = time.perf_counter()
        live = common_prefix(self.ids, prompt)
        restored = 0
        if self._can_snapshot():
            best = max(self._snaps, key=lambda s: common_prefix(s.ids, prompt), default=None)
            best_n = common_prefix(best.ids, prompt) if best else 0
            if best is not None and best_n > live + SWITCH_MIN_TOKENS:
                await self._keep_live()
                await self.backend.restore(best.handle)
                self.ids = list(best.ids)
                self._clock += 1
                best.used = self._clock
                live = restored = best_n
            elif len(self.ids) - live >= KEEP_MIN_TOKENS:
                await self._keep_live()   # about to lose the tail: another conversation, or an edit
        reuse = min(live, len(prompt) - 1)
        if reuse < self.backend.kv_length:
            await self.backend.truncate(reuse)
        self.ids = self.ids[:reuse]
        return Prepared(reuse, min(restored, reuse), round(1000 * (time.perf_counter() - t0), 3))

    def extend(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)

    async def clear(self) -> None:
        """Forget the live cache (snapshots stay)."""
        self.ids = []
        await self.backend.truncate(0)

    def forget_live(self) -> None:
        """After a failure the backend may hold a half-written cache: trust none of it."""
        self.ids = []

    def drop_snapshots(self) -> None:
        for s in self._snaps:
            _release(s.handle)
        self._snaps = []

    async def _keep_live(self) -> None:
        ids = tuple(self.ids)
        if len(ids) < KEEP_MIN_TOKENS or any(s.ids[:len(ids)] == ids for s in self._snaps):
            return   # too short, or already kept (as it is or as a longer state)
        handle = await self.backend.snapshot()
        size = int(getattr(handle, "bytes", 0) or 0)
        if size > self.budget_bytes:
            _release(handle)
            return
        for s in [s for s in self._snaps if ids[:len(s.ids)] == s.ids]:   # older states of this one
            self._snaps.remove(s)
            _release(s.handle)
        self._clock += 1
        self._snaps.append(_Snapshot(ids, handle, size, self._clock))
        while self.snapshot_bytes > self.budget_bytes:
            old = min(self._snaps, key=lambda s: s.used)
            self._snaps.remove(old)
            _release(old.handle)


def _release(handle: Any) -> None:
    try:
        handle.release()
    except Exception:   # already gone with its bridge
        pass
