"""intab's WASM kernel in every GGUF block kind (web/kernel/decoder.c's set_mat layouts):
- each kind's conversion, widened by the same macro the products and the embedding lookup use,
  gives gguf-py's dequantized float32 bit for bit, up to the sign of zero (quantized data, and
  random bytes that reach every nibble, high bit and packed scale);
- the tiny synthetic llama GGUFs (models/synthetic.py; tiny-kinds cycles its matrices through all
  11 kinds, with q/k/v and gate/up of different kinds and an untied output layer) run on the
  kernel with transformers' recorded logits (tests/golden/synthetic.json) within float noise."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.parity import compare  # noqa: E402
from models.synthetic import TINY, build_model, quantize  # noqa: E402
from web.kernel.compile import compile_kernel, node_flags  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

KINDS = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
# Byte ranges of each block's fp16 scales: random bytes there could be inf/NaN, which no quantizer writes.
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q4_K": [0, 2], "Q5_K": [0, 2],
              "Q6_K": [208]}
GOLDEN = json.loads((REPO / "tests" / "golden" / "synthetic.json").read_text())["cases"]
# The llama-architecture tiny models the kernel runs (tiny-llama3's rope factors are karch's).
KERNEL_CASES = [c for c in GOLDEN if c["name"] in ("tiny-llama", "tiny-kinds")]
TOL = 2e-4   # as tests/test_synthetic.py: float32 noise between torch and a different sum order


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kernel")
    compile_kernel(out)
    return out


DEQUANT = """
import { readFileSync, writeFileSync } from 'node:fs';
const [wasmPath, casesPath, reserve] = process.argv.slice(2);
const memory = new WebAssembly.Memory({ initial: 64, maximum: 65535 });
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), { env: { memory, now: () => 0 } });
const k = instance.exports;
if (Number(reserve) && !k.alloc(Number(reserve))) throw new Error('could not reserve');   // pointers above 2 GiB from here
for (const c of JSON.parse(readFileSync(casesPath))) {
  const src = readFileSync(c.in), p = k.alloc(src.length) >>> 0, out = k.alloc(c.rows * c.cols * 4) >>> 0;
  if (Number(reserve) && !(p > 2 ** 31 && out > 2 ** 31)) throw new Error('not above 2 GiB');
  new Uint8Array(memory.buffer, p, src.length).set(src);
  if (!k.dequantize(c.kind_id, p, c.rows, c.cols, out)) throw new Error(`dequantize refused ${c.kind}`);
  writeFileSync(c.out, new Uint8Array(memory.buffer, out, c.rows * c.cols * 4));
}
"""


def gguf_bytes(kind: str, rows: int, cols: int, rng: np.random.Generator, random_bytes: bool) -> np.ndarray:
    """[rows, row bytes] uint8 of `kind`: quantized normal data, or random bytes with sane fp16 scales."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    if not random_bytes:
        w = (rng.standard_normal((rows, cols)) * rng.uniform(0.01, 3.0, (rows, 1))).astype(np.float32)
        return np.ascontiguousarray(quantize(w, kind)).view(np.uint8).reshape(rows, -1)
    per, size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
    raw = rng.integers(0, 256, (rows * cols // per, size), dtype=np.uint8)
    if kind == "F16":   # every finite fp16, subnormals included: exponent 31 (inf, NaN) left out
        h = raw.view(np.uint16)
        h[(h & 0x7C00) == 0x7C00] &= 0xBFFF
    for at in F16_FIELDS.get(kind, []):
        raw[:, at:at + 2] = rng.uniform(-0.05, 0.05, raw.shape[0]).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1)


@pytest.mark.parametrize("random_bytes", [False, True], ids=["quantized", "random-bytes-above-2GiB"])
def test_every_kind_widens_to_gguf_py_dequantize_bit_for_bit(kernel_dir, tmp_path, random_bytes):
    """The random-bytes case runs at addresses above 2 GiB (a 2.1 GiB reserve, untouched pages that
    cost no RAM): the module may grow to wasm32's 4 GiB, and its pointers must hold there."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    rng = np.random.default_rng(7 + random_bytes)
    rows, cols, cases, want = 24, 512, [], {}
    for kind in KINDS:
        data = gguf_bytes(kind, rows, cols, rng, random_bytes)
        (tmp_path / f"{kind}.in").write_bytes(data.tobytes())
        qtype = GGMLQuantizationType[kind]
        want[kind] = np.asarray(dequantize(data, qtype), dtype=np.float32).reshape(rows, cols)
        cases.append({"kind": kind, "kind_id": int(qtype), "rows": rows, "cols": cols,
                      "in": str(tmp_path / f"{kind}.in"), "out": str(tmp_path / f"{kind}.out")})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "dequant.mjs").write_text(DEQUANT)
    r = subprocess.run(["node", *node_flags(), str(tmp_path / "dequant.mjs"), str(kernel_dir / "decoder-st.wasm"),
                        str(tmp_path / "cases.json"), str(int(2.1 * 2 ** 30) if random_bytes else 0)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wrong = {}
    for kind in KINDS:
        got = np.fromfile(tmp_path / f"{kind}.out", dtype=np.float32).reshape(rows, cols)
        # Bit for bit, except the sign of a zero: Q4_0 is d*q - 8d in the kernel, d*(q-8) in gguf-py,
        # so q = 8 with d < 0 is +0 against -0 (the same in every sum and product the kernel makes).
        bad = (got.view(np.uint32) != want[kind].view(np.uint32)) & ~((got == 0) & (want[kind] == 0))
        if bad.any():
            i = tuple(np.argwhere(bad)[0])
            wrong[kind] = (int(bad.sum()), i, float(got[i]), float(want[kind][i]))
    assert not wrong, wrong


BODY = """
const cases = JSON.parse(readFileSync(%(cases)s));
for (const c of cases) {
  const b = await nodeKernelBridge(c.dir, wasmDir, Number(threadsArg), 256);
  const steps = [];
  let r = await b.forward(c.prompt_ids, 0, 10);
  for (const t of c.greedy_ids.slice(0, -1)) {
    steps.push({ ids: Array.from(r.ids), logits: Array.from(r.logits), logsumexp: r.logsumexp });
    r = await b.forward([t], b.kvLength, 10);
  }
  steps.push({ ids: Array.from(r.ids), logits: Array.from(r.logits), logsumexp: r.logsumexp });
  out[c.name] = steps;
  b.release();
}
console.log(JSON.stringify(out));
process.exit(0);
"""


def test_tiny_llama_models_match_transformers_on_the_kernel(kernel_dir, tmp_path_factory, tmp_path):
    """Every kind in one model, q/k/v and gate/up split by kind, an untied lm_head: the kernel's
    top-10 logits per step against transformers' on the same GGUF, one and two threads."""
    cache = tmp_path_factory.mktemp("synthetic-cache")
    cases = [dict(c, dir=str(build_model(TINY[c["name"]], cache, say=lambda *_: None))) for c in KERNEL_CASES]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = tmp_path / "tiny.mjs"
    script.write_text("""
import { readFileSync } from 'node:fs';
import { nodeKernelBridge } from %s;
const [wasmDir, threadsArg] = process.argv.slice(2);
const out = {};
""" % json.dumps((REPO / "web" / "kernel" / "node_bridge.mjs").as_uri()) + BODY % {"cases": json.dumps(str(tmp_path / "cases.json"))})
    runs = {}
    for threads in (1, 2):
        r = subprocess.run(["node", *node_flags(), str(script), str(kernel_dir), str(threads)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[threads] = json.loads(r.stdout.strip().splitlines()[-1])
    assert runs[1] == runs[2], "threads changed a bit of the result"
    for case in KERNEL_CASES:
        c = compare(case, runs[1][case["name"]])
        print(case["name"], c)
        assert c["max_dlogit"] < TOL and c["max_dlse"] < TOL, (case["name"], c)
        assert c["top1"] + c["near_ties"] == c["steps"] and c["top3_missing"] == 0, (case["name"], c)


def test_the_bridge_works_above_2_gib(kernel_dir, tmp_path_factory, tmp_path):
    """tiny-kinds with a 600k-token context: its KV cache (2.3 GiB, untouched pages cost no RAM)
    puts the token buffer, the head's arrays and the last layers' keys and values above 2 GiB,
    where the module's i32 pointers read negative unless taken unsigned. Same logits as at 256."""
    cache = tmp_path_factory.mktemp("synthetic-cache")
    case = next(c for c in GOLDEN if c["name"] == "tiny-kinds")
    src = build_model(TINY["tiny-kinds"], cache, say=lambda *_: None)
    big = tmp_path / "big"
    big.mkdir()
    for f in ("manifest.json", "weights.bin"):
        (big / f).symlink_to(src / f)
    cfg = json.loads((src / "config.json").read_text())
    (big / "config.json").write_text(json.dumps(dict(cfg, max_position_embeddings=600_000)))
    script = tmp_path / "big.mjs"
    script.write_text("""
import { nodeKernelBridge } from %s;
const [wasmDir, small, big] = process.argv.slice(2);
const prompt = %s, out = [];
for (const [dir, ctx] of [[small, 256], [big, 600000]]) {
  const b = await nodeKernelBridge(dir, wasmDir, 1, ctx);
  let r = await b.forward(prompt, 0, 10, { penalty: 1.3, penalized: Int32Array.from(prompt) });
  const snap = await b.snapshot();
  await b.truncate(0); await b.forward([5, 6, 7], 0, 4); await b.restore(snap);
  r = await b.forward([r.ids[0]], b.kvLength, 10);
  out.push({ ids: Array.from(r.ids), logits: Array.from(r.logits), memory: b.memoryBytes });
  b.release();
}
console.log(JSON.stringify(out));
process.exit(0);
""" % (json.dumps((REPO / "web" / "kernel" / "node_bridge.mjs").as_uri()), json.dumps(case["prompt_ids"])))
    r = subprocess.run(["node", *node_flags(), str(script), str(kernel_dir), str(src), str(big)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    small, large = json.loads(r.stdout.strip().splitlines()[-1])
    assert large["memory"] > 2 ** 31 and small["memory"] < 2 ** 30
    assert (large["ids"], large["logits"]) == (small["ids"], small["logits"])
