"""CPython counterpart of web/weights.mjs: expand the shipped blocks (weights.bin) into the float32
bytes the graph's external initializers point to (weights.f32). numpy, so CPython only; the tab
does this in JS (models/packed.py explains the format)."""
from __future__ import annotations

import numpy as np


def expand_tensor(src: bytes | np.ndarray, t: dict) -> np.ndarray:
    """One tensor of the layout as float32, shaped as the graph declares it."""
    rows, cols, kind = int(t["rows"]), int(t["cols"]), t["kind"]
    if kind == "F32":   # a vector stored as is
        return np.frombuffer(src, dtype="<f4", count=cols, offset=int(t["src"])).astype(np.float32)
    nb = cols // 32
    per_block = {"Q4_1": 20, "Q8_0": 34}[kind]
    buf = np.frombuffer(src, dtype=np.uint8, count=rows * nb * per_block, offset=int(t["src"]))
    blocks = buf.reshape(rows, nb, per_block)
    d = blocks[:, :, 0:2].copy().view(np.float16).astype(np.float32)            # [rows, nb, 1]
    if kind == "Q4_1":
        m = blocks[:, :, 2:4].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, :, 4:20]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).astype(np.float32)    # weight j, then j+16
        w = d * q + m                                                            # float32, as gguf-py
    else:
        w = blocks[:, :, 2:34].copy().view(np.int8).astype(np.float32) * d
    w = w.reshape(rows, cols)
    return np.ascontiguousarray(w.T) if t["transpose"] else w


def expand(layout: dict, src: bytes | np.ndarray) -> dict[str, np.ndarray]:
    """{initializer name: float32 array} for every tensor of the layout."""
    if len(src) < int(layout["src_bytes"]):
        raise ValueError(f"weights.bin has {len(src)} bytes; its layout needs {layout['src_bytes']}")
    return {t["name"]: expand_tensor(src, t) for t in layout["tensors"]}
