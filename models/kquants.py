"""Quantize float32 rows to llama.cpp's K-quant blocks (Q4_K, Q5_K, Q6_K), for synthetic GGUFs.

gguf-py 0.19 quantizes only Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and BF16, but dequantizes every kind, so
this writes the other three and tests/test_kquants.py checks them through gguf-py's dequantizer.
It is a plain min/max quantizer (llama.cpp searches scales to lower the error; the bytes' layout,
which is what matters here, is the same): values per 256-value super-block, an fp16 super-scale
(and super-min), 6-bit (Q4_K/Q5_K) or int8 (Q6_K) sub-block scales.
"""
from __future__ import annotations

import numpy as np

QK = 256


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _pack_k_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """[n, 8] 6-bit scales and mins -> [n, 12] bytes, gguf-py's Q4_K.get_scale_min inverted."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    out = np.zeros((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 0x3F) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 0x3F) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return out


def _asymmetric(x: np.ndarray, levels: int):
    """[n, 256] -> (d, dmin fp16 [n, 1]; sc, m 6-bit [n, 8]; q [n, 8, 32] in 0..levels), x ~ d*sc*q - dmin*m."""
    n = x.shape[0]
    sub = x.reshape(n, 8, 32)
    lo = np.minimum(sub.min(axis=2), 0)          # the min is subtracted: keep it <= 0, stored as m >= 0
    hi = sub.max(axis=2)
    scale = (hi - lo) / levels                   # [n, 8]
    d = _f16(scale.max(axis=1, keepdims=True) / 63).astype(np.float32)
    dmin = _f16((-lo).max(axis=1, keepdims=True) / 63).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d > 0, np.clip(np.rint(scale / d), 0, 63), 0)
        m = np.where(dmin > 0, np.clip(np.rint(-lo / dmin), 0, 63), 0)
        step = (d * sc)[:, :, None]
        q = np.where(step > 0, np.rint((sub + (dmin * m)[:, :, None]) / step), 0)
    return _f16(d), _f16(dmin), sc, m, np.clip(q, 0, levels).astype(np.uint8)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """[rows, cols] float32, cols % 256 == 0 -> [rows, cols / 256 * 144] uint8."""
    rows = x.shape[0]
    b = x.reshape(-1, QK).astype(np.float32)
    d, dmin, sc, m, q = _asymmetric(b, 15)
    qs = q.reshape(-1, 4, 2, 32)                     # 32-byte groups: low nibbles sub-block 2g, high 2g+1
    qs = (qs[:, :, 0] | (qs[:, :, 1] << 4)).reshape(-1, 128)
    out = np.concatenate([d.view(np.uint8), dmin.view(np.uint8), _pack_k_scales(sc, m), qs], axis=1)
    return out.reshape(rows, -1)


def quantize_q5_k(x: np.ndarray) -> np.ndarray:
    """[rows, cols] float32, cols % 256 == 0 -> [rows, cols / 256 * 176] uint8."""
    rows = x.shape[0]
    b = x.reshape(-1, QK).astype(np.float32)
    d, dmin, sc, m, q = _asymmetric(b, 31)
    low = q & 0x0F
    qs = low.reshape(-1, 4, 2, 32)
    qs = (qs[:, :, 0] | (qs[:, :, 1] << 4)).reshape(-1, 128)
    high = (q >> 4) & 1                              # [n, 8, 32]: bit j of qh byte k = sub-block j, value k
    qh = np.zeros((b.shape[0], 32), np.uint8)
    for j in range(8):
        qh |= (high[:, j, :] << j).astype(np.uint8)
    out = np.concatenate([d.view(np.uint8), dmin.view(np.uint8), _pack_k_scales(sc, m), qh, qs], axis=1)
    return out.reshape(rows, -1)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """[rows, cols] float32, cols % 256 == 0 -> [rows, cols / 256 * 210] uint8 (symmetric, 16 int8 scales)."""
    rows = x.shape[0]
    b = x.reshape(-1, QK).astype(np.float32)
    n = b.shape[0]
    sub = b.reshape(n, 16, 16)
    amax = np.abs(sub).max(axis=2)                   # [n, 16]
    scale = amax / 31
    d = _f16(scale.max(axis=1, keepdims=True) / 127).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d > 0, np.clip(np.rint(scale / d), -128, 127), 0)
        step = (d * sc)[:, :, None]
        q = np.where(step != 0, np.rint(sub / step), 0)
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(n, 8, 32)   # 32-value runs
    # run j: ql bytes (j >> 2) * 64 + (j & 1) * 32, nibble (j >> 1) & 1; qh bytes (j >> 2) * 32, bits 2 * (j & 3)
    ql = np.zeros((n, 128), np.uint8)
    qh = np.zeros((n, 64), np.uint8)
    for j in range(8):
        lo, hi = q[:, j] & 0x0F, q[:, j] >> 4
        at = (j >> 2) * 64 + (j & 1) * 32
        ql[:, at:at + 32] |= lo << (4 * ((j >> 1) & 1))
        at = (j >> 2) * 32
        qh[:, at:at + 32] |= hi << (2 * (j & 3))
    out = np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), _f16(d).view(np.uint8)], axis=1)
    return out.reshape(rows, -1)


QUANTIZERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}
