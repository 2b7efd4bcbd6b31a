"""models/kquants.py, the Q4_K / Q5_K / Q6_K quantizer the synthetic GGUFs use (gguf-py has none):
gguf-py's dequantizer reads its blocks back within the kind's rounding error, and every scale,
minimum and quant lands where that dequantizer looks for it."""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from models.kquants import QUANTIZERS

# worst |error| / (the super-block's largest |value|) for a min/max quantizer: half a step of a
# sub-block's range (zero included: the format only subtracts a minimum) over 15 or 31 levels
# (Q6_K: symmetric, 2 x 31), plus the rounding of the 6-bit (Q6_K: 8-bit) sub-block scales
BOUND = {"Q4_K": 0.075, "Q5_K": 0.04, "Q6_K": 0.025}


@pytest.mark.parametrize("kind", sorted(QUANTIZERS))
def test_gguf_py_reads_the_blocks_back(kind):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal((6, 512)),                       # centered
                        rng.standard_normal((3, 512)) * 0.01 + 2.0,          # offset, narrow
                        np.linspace(-3, 1, 512)[None].repeat(2, 0)], axis=0).astype(np.float32)
    x[-1, :256] = 0.0                                                          # an all-zero super-block
    raw = QUANTIZERS[kind](x)
    assert raw.dtype == np.uint8 and raw.shape == (x.shape[0], 512 // 256 * {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}[kind])
    y = dequantize(raw, GGMLQuantizationType[kind]).reshape(x.shape)
    span = np.abs(x.reshape(-1, 256)).max(axis=1).repeat(256).reshape(x.shape)
    err = np.abs(y - x)
    assert np.all(err <= BOUND[kind] * np.maximum(span, 1e-6) + 1e-6), float((err / np.maximum(span, 1e-6)).max())
    assert np.all(y[-1, :256] == 0)
    # values swapped inside each 16-value sub-block (same scales) come back swapped: every quant
    # sits where gguf-py reads it, not just a good average
    perm = np.concatenate([b + rng.permutation(16) for b in range(0, 512, 16)])
    yp = dequantize(QUANTIZERS[kind](x[:, perm]), GGMLQuantizationType[kind]).reshape(x.shape)
    assert np.array_equal(yp, y[:, perm])
