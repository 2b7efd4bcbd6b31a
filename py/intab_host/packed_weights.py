"""CPython counterpart of web/weights.mjs: expand the shipped blocks (weights.bin) into the float32
bytes the graph's external initializers point to (weights.f32). numpy, so CPython only; the tab
does this in JS (models/packed.py explains the format).

Every kind is dequantized with gguf-py's float32 arithmetic, operation for operation (its
`quants.py`), so the bits equal gguf-py's (tests/test_packed.py checks each kind on random blocks);
it is written out here rather than called so that this file is the readable twin of weights.mjs.
"""
from __future__ import annotations

import numpy as np

# kind -> (values per block, bytes per block); intab.arch.BLOCK_KINDS is the list of record
_BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22),
           "Q5_1": (32, 24), "Q8_0": (32, 34), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
KINDS = tuple(_BLOCKS)


def _half(b: np.ndarray, at: int) -> np.ndarray:
    """The fp16 at byte `at` of each block, as float32 [n, 1]."""
    return b[:, at:at + 2].copy().view(np.float16).astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[n, 16] bytes -> [n, 32]: the low nibbles (values 0-15), then the high ones (16-31)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1's 32-bit word of fifth bits -> [n, 32] of 0/1 (value j's bit is bit j)."""
    word = qh.copy().view("<u4").reshape(-1, 1)
    return ((word >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)


def _k_scales(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 bytes of 6-bit scales and mins -> ([n, 8], [n, 8]) as float32."""
    d, m, md = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=1)
    return sc.astype(np.float32), mn.astype(np.float32)


def dequantize_blocks(kind: str, b: np.ndarray) -> np.ndarray:
    """[n, bytes per block] uint8 -> [n, values per block] float32, as gguf-py."""
    n = b.shape[0]
    if kind == "F32":
        return b.copy().view("<f4").astype(np.float32)
    if kind == "F16":
        return b.copy().view("<f2").astype(np.float32)
    if kind == "BF16":
        return (b.copy().view("<u2").astype(np.uint32) << 16).view(np.float32)
    if kind == "Q8_0":
        return b[:, 2:34].copy().view(np.int8).astype(np.float32) * _half(b, 0)
    if kind == "Q4_0":
        return _half(b, 0) * (_nibbles(b[:, 2:18]).astype(np.int8) - np.int8(8)).astype(np.float32)
    if kind == "Q4_1":
        return (_half(b, 0) * _nibbles(b[:, 4:20]).astype(np.float32)) + _half(b, 2)
    if kind == "Q5_0":
        q = (_nibbles(b[:, 6:22]) | (_high_bits(b[:, 2:6]) << 4)).astype(np.int8) - np.int8(16)
        return _half(b, 0) * q.astype(np.float32)
    if kind == "Q5_1":
        q = (_nibbles(b[:, 8:24]) | (_high_bits(b[:, 4:8]) << 4)).astype(np.float32)
        return (_half(b, 0) * q) + _half(b, 2)
    if kind in ("Q4_K", "Q5_K"):
        # 8 sub-blocks of 32: value = (d * scale) * q - (dmin * min); q from 64-byte groups, low nibbles first
        sc, mn = _k_scales(b[:, 4:16])
        d = (_half(b, 0) * sc).reshape(n, 8, 1)
        dm = (_half(b, 2) * mn).reshape(n, 8, 1)
        qs = b[:, 16:144] if kind == "Q4_K" else b[:, 48:176]
        q = np.stack([qs.reshape(n, 4, 32) & 0x0F, qs.reshape(n, 4, 32) >> 4], axis=2).reshape(n, 8, 32)
        if kind == "Q5_K":   # bit j of qh's byte k is the fifth bit of value k of sub-block j
            qh = b[:, 16:48].reshape(n, 1, 32)
            q = q | (((qh >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1) << 4)
        return (d * q.astype(np.float32) - dm).reshape(n, 256)
    if kind == "Q6_K":
        # 16 sub-blocks of 16 share an int8 scale; 4 low bits in ql, 2 high bits in qh
        ql, qh, sc = b[:, 0:128], b[:, 128:192], b[:, 192:208]
        d = (_half(b, 208) * sc.copy().view(np.int8).astype(np.float32)).reshape(n, 16, 1)
        lo = np.stack([ql.reshape(n, 2, 64) & 0x0F, ql.reshape(n, 2, 64) >> 4], axis=2).reshape(n, 8, 32)
        hi = ((qh.reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3).reshape(n, 8, 32)
        q = ((lo | (hi << 4)).astype(np.int8) - np.int8(32)).reshape(n, 16, 16).astype(np.float32)
        return (d * q).reshape(n, 256)
    raise ValueError(f"block kind {kind} is not one of {', '.join(KINDS)}")


def expand_tensor(src: bytes | np.ndarray, t: dict) -> np.ndarray:
    """One tensor of the layout as float32, shaped as the graph declares it."""
    rows, cols, kind = int(t["rows"]), int(t["cols"]), t["kind"]
    if kind not in _BLOCKS:
        raise ValueError(f"weights layout: cannot expand {kind} tensor {t.get('name')}")
    per, nbytes = _BLOCKS[kind]
    if cols % per:
        raise ValueError(f"weights layout: {t.get('name')} has {cols} columns, not whole {kind} blocks of {per}")
    count = rows * cols // per * nbytes
    buf = np.frombuffer(src, dtype=np.uint8, count=count, offset=int(t["src"]))
    w = dequantize_blocks(kind, buf.reshape(-1, nbytes)).reshape(rows, cols)
    if rows == 1 and kind == "F32" and not t.get("transpose"):
        return w.reshape(cols)   # a vector (norm weight, bias)
    return np.ascontiguousarray(w.T) if t["transpose"] else w


def expand(layout: dict, src: bytes | np.ndarray) -> dict[str, np.ndarray]:
    """{initializer name: float32 array} for every tensor of the layout."""
    if len(src) < int(layout["src_bytes"]):
        raise ValueError(f"weights.bin has {len(src)} bytes; its layout needs {layout['src_bytes']}")
    return {t["name"]: expand_tensor(src, t) for t in layout["tensors"]}
