"""Weight format "packed": the transport format differs from the compute format.

What the user downloads and caches is `weights.bin`: the GGUF's blocks, byte for byte, whatever
their kind (intab.arch.BLOCK_KINDS: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K;
~100 MB for SmolLM2-135M, 253 MB for Gemma 3 270M). What the kernels compute on is float32: `model.onnx` declares every
large weight as an external initializer in a file named `weights.f32` that never exists on the
server. At load time the worker expands the blocks into that file's bytes in memory
(web/weights.mjs) and hands them to onnxruntime-web as `externalData`; CPython does the same with
numpy (py/intab_host/packed_weights.py).

Why not dequantize in the graph (weight_format "blocks")? onnxruntime folds those nodes at
session creation keeping every float32 intermediate: a 4.6 GB peak in the tab. Why not 4-bit
kernels? onnxruntime-web's WASM MatMulNBits decodes 5-8x slower than float32 (shared/notes).
Why not re-quantize? A second rounding changes the output. Expansion is exact: each kind's
arithmetic is gguf-py's, float32 operation by float32 operation (web/weights.mjs says why a double
computation rounded to float32 gives the same bits).

The layout (manifest.json "weights") lists, per tensor: its initializer name, block kind, rows
and columns of the [out, in] matrix, whether the graph wants it transposed ([in, out] for
MatMul), and byte offsets in weights.bin (`src`) and in weights.f32 (`dst`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from intab.arch import BLOCK_KINDS, row_bytes

EXTERNAL = "weights.f32"   # the virtual file the graph's initializers point to
TRANSPORT = "weights.bin"  # the file that is shipped
# 1-D weights (norm weights, biases, rope factors) travel as "F32" vectors (rows 1), so that every
# weight the model has lives in weights.bin (web/kernel reads only that file).
DST_ALIGN = 4096           # float32 tensors start on page boundaries in weights.f32
SRC_ALIGN = 64


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class WeightPacker:
    """Collects quantized matrices while the graph is built; writes weights.bin and the layout."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self._raw: list[tuple[int, bytes]] = []
        self._src = 0
        self._dst = 0

    def add(self, name: str, w, transpose: bool, role: str = "") -> TensorProto:
        """An external float32 initializer `name` holding w ([out, in]) or its transpose; w is a
        QuantBlocks matrix (any kind) or a 1-D float32 vector (kind "F32"). `role` (e.g. "l3_qkv",
        "final_norm", docs/contracts.md §2) tells runtimes other than the graph which weight it is."""
        if isinstance(w, np.ndarray):
            if w.ndim != 1:
                raise ValueError(f"{name}: only 1-D float32 vectors are packed as arrays (matrices as blocks)")
            kind, rows, cols, raw = "F32", 1, w.shape[0], w.astype("<f4").tobytes()
        else:
            kind, (rows, cols), raw = w.kind, w.shape, np.ascontiguousarray(w.raw, dtype=np.uint8).tobytes()
        if kind not in BLOCK_KINDS or (kind != "F32" and cols % BLOCK_KINDS[kind][1]):
            raise ValueError(f"{name}: cannot pack {kind} with {cols} columns")
        if len(raw) != rows * row_bytes(kind, cols):
            raise ValueError(f"{name}: {len(raw)} bytes of blocks for a {rows}x{cols} {kind} matrix")
        src, dst = _align(self._src, SRC_ALIGN), _align(self._dst, DST_ALIGN)
        self._raw.append((src, raw))
        self._src = src + len(raw)
        self._dst = dst + rows * cols * 4
        self.tensors.append({"name": name, "role": role, "kind": kind, "rows": rows, "cols": cols,
                             "transpose": bool(transpose), "src": src, "dst": dst})
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend([cols] if rows == 1 and kind == "F32" and isinstance(w, np.ndarray) else
                      [cols, rows] if transpose else [rows, cols])
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", EXTERNAL), ("offset", str(dst)), ("length", str(rows * cols * 4))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return t

    def layout(self) -> dict:
        return {"transport": TRANSPORT, "external": EXTERNAL, "f32_bytes": _align(self._dst, DST_ALIGN),
                "src_bytes": self._src, "tensors": self.tensors}

    def write(self, folder: Path) -> dict:
        """Write weights.bin into folder; return the layout for the manifest."""
        tmp = Path(folder) / (TRANSPORT + ".part")
        with open(tmp, "wb") as f:
            for off, raw in self._raw:
                f.write(b"\0" * (off - f.tell()))
                f.write(raw)
        tmp.rename(Path(folder) / TRANSPORT)
        return self.layout()


def external_names(model: onnx.ModelProto) -> set[str]:
    return {t.name for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL}
