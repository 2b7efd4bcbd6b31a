"""The "packed" weight format (models/packed.py): the shipped blocks of every kind (F32, F16, BF16,
Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) expand to exactly the float32 weights gguf-py
(transformers' dequantizer) computes, in numpy (CPython) and in JS (the tab), and the graph that
reads them as external data computes what the in-graph dequantized one does."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from intab_host.packed_weights import expand
from intab.arch import BLOCK_KINDS
from models.graph import QuantBlocks, build_graph
from models.packed import WeightPacker
from test_graph import CFG, random_blocks, random_quant_weights, run_steps

REPO = Path(__file__).resolve().parents[1]


# Byte offsets of each kind's fp16 scales (d, and the min or dmin where it has one).
HALVES = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
          "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
ALL_KINDS = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K")


def finite_halves(shape, rng) -> np.ndarray:
    """Arbitrary fp16 bit patterns (subnormals, huge values, -0), not NaN/Inf."""
    bits = rng.integers(0, 0x7C00, shape, dtype=np.uint16)
    return bits | (rng.integers(0, 2, shape, dtype=np.uint16) << 15)


def wild_blocks(kind: str, rows: int, cols: int, rng) -> QuantBlocks:
    """Random bytes of `kind` whose fp16 scales are arbitrary finite patterns; F16/BF16/F32 values are
    arbitrary patterns too (BF16 and F32 NaN and Inf included: they expand by bit shifts and copies)."""
    _, per, nbytes = BLOCK_KINDS[kind]
    nb = cols // per
    raw = rng.integers(0, 256, (rows, nb, nbytes), dtype=np.uint8)
    if kind == "F16":
        raw = finite_halves((rows, nb), rng).view(np.uint8).reshape(rows, nb, 2)
    for at in HALVES.get(kind, ()):
        raw[:, :, at:at + 2] = finite_halves((rows, nb), rng).view(np.uint8).reshape(rows, nb, 2)
    return QuantBlocks(kind, raw.reshape(rows, -1), (rows, cols))


def run_node(tmp_path: Path, body: str, *args) -> str:
    """Run a Node module that has web/weights.mjs's exports in scope; its stdout."""
    script = tmp_path / "check.mjs"
    script.write_text("import { expandWeights, lazyWeights } from " + json.dumps((REPO / "web" / "weights.mjs").as_uri())
                      + ";\nimport { readFileSync, writeFileSync } from 'node:fs';\n" + body)
    return subprocess.run(["node", str(script), *map(str, args)], capture_output=True, text=True, check=True).stdout


def reference(w: QuantBlocks) -> np.ndarray:
    return dequantize(w.raw, GGMLQuantizationType[w.kind]).reshape(w.shape).astype(np.float32)


@pytest.fixture(scope="module")
def packed_set(tmp_path_factory):
    rng = np.random.default_rng(11)
    packer = WeightPacker()
    mats = {}
    shapes = [("Q4_1", 48, 96, True), ("Q4_1", 7, 64, False), ("Q8_0", 33, 64, False), ("Q8_0", 5, 128, True)]
    for kind in ALL_KINDS:   # each kind transposed and not, K-quants two super-blocks wide
        cols = 512 if kind.endswith("_K") else 64
        shapes += [(kind, 21, cols, True), (kind, 3, cols, False)]
    for i, (kind, rows, cols, tr) in enumerate(shapes):
        w = wild_blocks(kind, rows, cols, rng)
        packer.add(f"t{i}_{kind}", w, tr)
        mats[f"t{i}_{kind}"] = (w, tr)
    norm = rng.standard_normal(96).astype(np.float32)   # an RMSNorm weight travels as F32
    packer.add("norm", norm, False, role="l0_attn_norm")
    mats["norm"] = (norm, False)
    folder = tmp_path_factory.mktemp("packed")
    layout = packer.write(folder)
    return folder, layout, mats


def test_numpy_expansion_is_gguf_py_bit_for_bit(packed_set):
    folder, layout, mats = packed_set
    got = expand(layout, (folder / "weights.bin").read_bytes())
    assert {t["kind"] for t in layout["tensors"]} == set(ALL_KINDS)
    for name, (w, tr) in mats.items():
        want = w if isinstance(w, np.ndarray) else reference(w).T if tr else reference(w)
        assert got[name].shape == want.shape
        assert np.array_equal(got[name].view(np.uint32), np.ascontiguousarray(want).view(np.uint32)), name


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_expansion_equals_numpy(packed_set, tmp_path):
    folder, layout, mats = packed_set
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    run_node(tmp_path,
             "const [layout, src, out] = process.argv.slice(2);\n"
             "writeFileSync(out, expandWeights(JSON.parse(readFileSync(layout)), new Uint8Array(readFileSync(src))));\n",
             tmp_path / "layout.json", folder / "weights.bin", tmp_path / "out.f32")
    js = np.fromfile(tmp_path / "out.f32", dtype=np.uint8)
    assert js.size == layout["f32_bytes"]
    want = expand(layout, (folder / "weights.bin").read_bytes())
    for t in layout["tensors"]:
        a = want[t["name"]].view(np.uint8).ravel()
        assert np.array_equal(js[t["dst"]:t["dst"] + a.size], a), t["name"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_lazy_weights_answer_every_range_like_the_full_expansion(packed_set, tmp_path):
    """lazyWeights (what the tab hands onnxruntime) gives, for each tensor's range and for ranges
    across tensors and padding, the bytes of expandWeights; it is a Uint8Array of the full length."""
    folder, layout, _ = packed_set
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    out = run_node(
        tmp_path,
        "const layout = JSON.parse(readFileSync(process.argv[2])), src = new Uint8Array(readFileSync(process.argv[3]));\n"
        "const full = expandWeights(layout, src), lazy = lazyWeights(layout, src);\n"
        "const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);\n"
        "const ranges = layout.tensors.map((t) => [t.dst, t.dst + t.rows * t.cols * 4]);\n"
        "ranges.push([0, full.length], [5, 9000], [ranges[1][0] - 3, ranges[2][0] + 17]);\n"
        "const bad = ranges.filter(([b, e]) => !same(lazy.subarray(b, e), full.subarray(b, e)));\n"
        "console.log(JSON.stringify({ok: lazy instanceof Uint8Array && lazy.byteLength === full.length, bad}));\n",
        tmp_path / "layout.json", folder / "weights.bin")
    assert json.loads(out) == {"ok": True, "bad": []}


def test_js_expansion_rejects_a_short_file(tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    out = run_node(tmp_path,
                   "try { expandWeights({src_bytes: 100, f32_bytes: 0, tensors: []}, new Uint8Array(10)); process.exit(3); }\n"
                   "catch (e) { console.log(e.name + ': ' + e.message); }\n")
    assert "LoadError: weights.bin has 10 bytes" in out


def test_packed_graph_computes_what_the_blocks_graph_does(tmp_path):
    quant = random_quant_weights(9, np.random.default_rng(4))
    chunks = [[5, 17, 3, 90, 42], [8], [11, 60]]
    want = run_steps(build_graph(CFG, quant), chunks)

    packer = WeightPacker()
    model = build_graph(CFG, quant, packer=packer)
    layout = packer.write(tmp_path)
    assert all(t.data_location == 1 for t in model.graph.initializer if t.name in {x["name"] for x in layout["tensors"]})
    weights = expand(layout, (tmp_path / "weights.bin").read_bytes())
    so = ort.SessionOptions()
    so.add_external_initializers(list(weights), [ort.OrtValue.ortvalue_from_numpy(v) for v in weights.values()])
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    got = run_steps(session, chunks)
    for a, b in zip(want, got):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)
