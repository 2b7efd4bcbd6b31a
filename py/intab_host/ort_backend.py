"""Backend for CPython: onnxruntime runs the same graph the browser runs (tests, parity, tools)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Sequence

from intab.backend import Head, as_head
from intab.candidates import Candidates
from intab.errors import BackendError


class OrtBackend:
    name = "onnxruntime-cpu"

    def __init__(self, model_path: str | Path, config: dict, threads: int = 0):
        import numpy as np
        import onnxruntime as ort

        self._np = np
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        self._weights = _packed_weights(Path(model_path), ort)
        if self._weights:
            so.add_external_initializers(*self._weights)
        self._session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._has_head = "sampling" in {i.name for i in self._session.get_inputs()}
        self._vocab = int(config["vocab_size"])
        self._kv_shape = (1, int(config["num_key_value_heads"]), 0, int(config["head_dim"]))
        self._layers = int(config["num_hidden_layers"])
        self._past: dict = {}
        self._length = 0
        self._reset()

    def _reset(self) -> None:
        empty = self._np.zeros(self._kv_shape, dtype=self._np.float32)
        self._past = {f"past_key_values.{i}.{kind}": empty for i in range(self._layers) for kind in ("key", "value")}
        self._length = 0

    @property
    def kv_length(self) -> int:
        return self._length

    async def forward(self, ids: Sequence[int], start: int, head: Head | int) -> Candidates:
        np = self._np
        if start != self._length:
            raise BackendError(f"forward at position {start} but the KV cache holds {self._length} tokens.")
        h = as_head(head)
        feeds = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "position_ids": np.arange(start, start + len(ids), dtype=np.int64)[None],
            "num_candidates": np.asarray([h.k], dtype=np.int64),
            **self._past,
        }
        if self._has_head:
            feeds.update(head_feeds(np, h, self._vocab))
        out = dict(zip(self._outputs, self._session.run(None, feeds)))
        await asyncio.sleep(0)   # a step boundary, as in the browser: lets abort() and other tasks in
        self._past = {n.replace("present.", "past_key_values.", 1): v for n, v in out.items() if n.startswith("present.")}
        self._length += len(ids)
        logits = out["cand_logits"][0]
        n = int(np.isfinite(logits).sum())     # fewer allowed tokens than asked for: drop the -inf ones
        stats = out["head_stats"].tolist() if "head_stats" in out else [None, None, None, -1]
        return Candidates(tuple(out["cand_ids"][0][:n].tolist()), tuple(logits[:n].tolist()),
                          float(out["logsumexp"][0]), stats[0], stats[1], stats[2], int(stats[3]),
                          h.draw if h.draw >= 0 else None, h.temperature)

    async def snapshot(self) -> "_Snapshot":
        """The KV cache as it is: the arrays are never written again (every run makes new ones)."""
        return _Snapshot(dict(self._past), self._length)

    async def restore(self, snap: "_Snapshot") -> None:
        if not isinstance(snap, _Snapshot):
            raise BackendError("restore: not a snapshot of this backend.")
        self._past, self._length = dict(snap.past), snap.length

    async def truncate(self, length: int) -> None:
        if length == 0:
            self._reset()
        elif length < self._length:
            self._past = {k: v[:, :, :length].copy() for k, v in self._past.items()}
            self._length = length


def head_feeds(np, h: Head, vocab: int) -> dict:
    """The graph's head inputs for `h` (docs/contracts.md §1)."""
    if h.mask is None:
        bias = np.zeros((1, 1), np.float32)
    else:
        bits = np.unpackbits(np.frombuffer(h.mask, np.uint8), bitorder="little")[:vocab]
        bias = np.where(bits, np.float32(0), np.float32(-np.inf)).astype(np.float32)[None]
    pen = sorted(set(h.penalized)) or [0]
    return {"logit_bias": bias, "penalized_ids": np.asarray(pen, np.int64),
            "sampling": np.asarray([h.temperature or 1.0, h.top_p, h.min_p, h.top_k,
                                    h.penalty if h.penalized else 1.0, h.draw], np.float32)}


class _Snapshot:
    def __init__(self, past: dict, length: int):
        self.past, self.length = past, length
        self.bytes = sum(int(v.nbytes) for v in past.values())

    def release(self) -> None:
        self.past = {}


def _packed_weights(model_path: Path, ort) -> tuple[list, list] | None:
    """A "packed" model folder (models/packed.py): the graph's float32 weights, expanded from
    weights.bin as the browser does, as (names, OrtValues) for add_external_initializers."""
    import json

    manifest = model_path.parent / "manifest.json"
    layout = json.loads(manifest.read_text()).get("weights") if manifest.exists() else None
    if not layout:
        return None
    from .packed_weights import expand

    weights = expand(layout, (model_path.parent / layout["transport"]).read_bytes())
    names = list(weights)
    # The session keeps pointers into these arrays: the OrtValues (held by the backend) own them.
    return names, [ort.OrtValue.ortvalue_from_numpy(weights[n]) for n in names]
