"""intab's WASM kernel on every architecture (llama with Llama 3 rope factors and an untied output,
qwen2's biases, qwen3's QK-norm at head_dim 128, gemma3's GeGLU, four norms, embedding scale,
query scale and sliding-window layers with their own rope base), run by Node through
web/kernel/node_bridge.mjs as tests/test_kernel.py runs it:
- against onnxruntime on the same folder (the graph of models/graph.py, which tests/test_synthetic.py
  holds to transformers): tiny synthetic GGUFs of each family whose matrices are only in kinds the
  kernel computes, q/k/v and gate/up both split (kinds alternate) and stacked (one kind);
- against transformers' recorded logits (tests/golden/synthetic.json) on the tiny GGUFs themselves,
  and Gemma 3 270M's golden greedy completions at 1 and 2 threads, wherever the kernel computes
  the files' block kinds (web/capabilities.mjs says which; the others are skipped, naming the kind).
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model_files import node_json
from models.parity import compare, intab_steps
from models.synthetic import TINY, build_model
from test_kernel import EPILOGUE, GREEDY, PRELUDE, REPO, kernel_dir, run_kernel  # noqa: F401 (kernel_dir: a fixture)
from web.kernel.compile import node_flags  # noqa: F401

GOLDEN = json.loads((REPO / "tests" / "golden" / "synthetic.json").read_text())
CASES = {c["name"]: c for c in GOLDEN["cases"]}
GEMMA_GOLDEN = REPO / "tests" / "golden" / "gemma3-270m.greedy.json"
# float32 noise: the kernel and onnxruntime (or torch) sum in different orders; measured max |dlogit|
# kernel vs onnxruntime on these models below 2e-5; the bound is test_synthetic.py's.
TOL = 2e-4

# Each family's tiny shape with its matrices in Q8_0 / Q4_1 only: alternating kinds split q/k/v and
# gate/up into tensors of their own; one kind keeps them stacked (qwen2: one qkv_bias).
ONLY_KERNEL_KINDS = {
    **{f"{n}-split": replace(TINY[n], name=f"{n}-split", kinds=("Q8_0", "Q4_1"), edge_kind="Q8_0")
       for n in ("tiny-llama", "tiny-llama3", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3")},
    "tiny-qwen2-stacked": replace(TINY["tiny-qwen2"], name="tiny-qwen2-stacked", kinds=("Q4_1",), edge_kind="Q4_1"),
    "tiny-gemma3-stacked": replace(TINY["tiny-gemma3"], name="tiny-gemma3-stacked", kinds=("Q8_0",), edge_kind="Q8_0"),
}

# Prefill `prompt`, then one decode step per forced token: per step the top-10 and the log-sum-exp.
STEPS = """
const prompt = %(prompt)s, forced = %(forced)s;
let r = await b.forward(prompt, 0, 10);
out.steps = [];
for (let j = 0; ; j++) {
  out.steps.push({ ids: Array.from(r.ids), logits: Array.from(r.logits), logsumexp: r.logsumexp });
  if (j === forced.length - 1) break;
  r = await b.forward([forced[j]], b.kvLength, 10);
}
out.threads = b.threads;
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kernel-archs")


def kernel_steps(tmp_path, folder, kernel_dir, prompt, forced, threads=1) -> dict:
    return run_kernel(tmp_path, folder, kernel_dir, STEPS % {"prompt": json.dumps(prompt), "forced": json.dumps(forced)}, threads)


def misfit(tmp_path: Path, folder: Path) -> str:
    """web/capabilities.mjs's kernelMisfit for a model folder ('' when the kernel runs it)."""
    return node_json("capabilities.mjs", "kernelMisfit", "kernelMisfit(...data)",
                     [json.loads((folder / f).read_text()) for f in ("manifest.json", "config.json")])


def as_reference(steps: list[dict]) -> dict:
    """onnxruntime's steps in the shape models.parity.compare reads (margins from its own top-2)."""
    return {"steps": [dict(s, margin=s["logits"][0] - s["logits"][1]) for s in steps]}


@pytest.mark.parametrize("name", list(ONLY_KERNEL_KINDS))
def test_kernel_equals_onnxruntime_on_each_family(name, cache, kernel_dir, tmp_path):
    """Every feature of the family, on a prompt of 24 tokens (gemma3's window is 5) and one of 150
    (two chunks; decode key blocks that start inside the window), kernel against the graph."""
    shape = ONLY_KERNEL_KINDS[name]
    folder = build_model(shape, cache, say=lambda *_: None)
    assert misfit(tmp_path, folder) == ""
    manifest = json.loads((folder / "manifest.json").read_text())
    roles = {t["role"].split("_", 1)[1] if t["role"][:1] == "l" and t["role"][1:2].isdigit() else t["role"]
             for t in manifest["weights"]["tensors"]}
    assert ("q" in roles) == ("split" in name) and ("gate" in roles) == ("split" in name), roles
    case = CASES[name.rsplit("-", 1)[0]]
    long_prompt = [(17 + i * 89) % (shape.vocab - 1) for i in range(150)]
    for prompt, forced in ((case["prompt_ids"], case["greedy_ids"]), (long_prompt, case["greedy_ids"][:5])):
        got = kernel_steps(tmp_path, folder, kernel_dir, prompt, forced)["steps"]
        ref = intab_steps(folder, prompt, forced)
        c = compare(as_reference(ref), got)
        print(name, len(prompt), c)
        assert c["max_dlogit"] < TOL and c["max_dlse"] < TOL, c
        assert c["top1"] + c["near_ties"] == c["steps"] and c["top3_missing"] == 0, c


def test_threads_change_no_bit_with_windows_and_split_tensors(cache, kernel_dir, tmp_path):
    folder = build_model(ONLY_KERNEL_KINDS["tiny-gemma3-split"], cache, say=lambda *_: None)
    prompt, forced = [(5 + i * 31) % 383 for i in range(150)], [7, 8, 9, 10, 11, 12]
    one = kernel_steps(tmp_path, folder, kernel_dir, prompt, forced, threads=1)
    two = kernel_steps(tmp_path, folder, kernel_dir, prompt, forced, threads=2)
    assert (one["threads"], two["threads"]) == (1, 2) and one["steps"] == two["steps"]


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_logits_equal_transformers(name, cache, kernel_dir, tmp_path):
    """The tiny GGUFs as models/synthetic.py writes them (Q4_K_M-like mixes), against the logits
    transformers computed on the same files (tests/golden/synthetic.json)."""
    case = CASES[name]
    folder = build_model(TINY[name], cache, say=lambda *_: None)
    why = misfit(tmp_path, folder)
    if why:
        pytest.skip(f"the kernel does not run {name} yet: {why}")
    got = kernel_steps(tmp_path, folder, kernel_dir, case["prompt_ids"], case["greedy_ids"])["steps"]
    c = compare(case, got)
    print(name, c)
    assert c["max_dlogit"] < TOL and c["max_dlse"] < TOL, c
    assert c["top1"] + c["near_ties"] == c["steps"] and c["top3_missing"] == 0, c



@pytest.mark.skipif(not GEMMA_GOLDEN.exists(), reason="no golden file for Gemma 3 270M")
@pytest.mark.parametrize("threads", [1, 2])
def test_gemma3_270m_greedy_tokens_are_the_reference(gemma_dir, kernel_dir, tmp_path, threads):
    why = misfit(tmp_path, gemma_dir)
    if why:
        pytest.skip(f"the kernel does not run Gemma 3 270M yet: {why}")
    golden = json.loads(GEMMA_GOLDEN.read_text())
    got = run_kernel(tmp_path, gemma_dir, kernel_dir,
                     GREEDY % {"golden": json.dumps(str(GEMMA_GOLDEN)), "eos": golden["eos_token_id"]}, threads)
    wrong = {c["name"]: next(i for i, (a, b) in enumerate(zip(got[c["name"]] + [-1], c["output_ids"])) if a != b)
             for c in golden["cases"] if got[c["name"]] != c["output_ids"]}
    assert not wrong, wrong   # case -> first differing step


def test_rope_frequencies_are_the_graphs(tmp_path):
    """The bridge's invFreq (linear, llama3 rope_scaling, rope_freqs factors) against models/graph.py's
    inv_freq. Within a few ulp, not bit for bit: numpy's float32 power over an array is a vector
    routine that is off by 1-4 ulp for some exponents (measured: 2..27 of 32..128 frequencies), while
    the bridge rounds JS's double pow once; a wrong branch of the scaling would be off by far more."""
    from intab.arch import Rope
    from models.graph import inv_freq
    llama3 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}
    cases = [(64, 500000.0, llama3, None), (128, 1e6, {"rope_type": "linear", "factor": 4.0}, None),
             (64, 10000.0, None, [1.0 + 0.5 * i for i in range(32)]), (256, 1e6, None, None)]
    got = node_json("kernel_bridge.mjs", "invFreq",
                    "data.map(([hd, th, sc, f]) => Array.from(invFreq(hd, th, sc, f && new Float32Array(f))))", cases)
    for (hd, theta, scaling, factors), g in zip(cases, got):
        want = inv_freq(hd, Rope(theta, scaling), None if factors is None else np.array(factors, np.float32))
        assert np.allclose(np.array(g, np.float32), want, rtol=5e-7, atol=0), (hd, theta, scaling)


FULL = os.environ.get("INTAB_FULL_SHAPES", "")


@pytest.mark.skipif(not FULL, reason="full shapes are slow (minutes each): INTAB_FULL_SHAPES=all or =name,name")
@pytest.mark.parametrize("name", ["smollm2-360m", "qwen2.5-0.5b", "qwen3-0.6b", "llama3.2-1b"])
def test_kernel_equals_onnxruntime_at_full_shapes(name, kernel_dir, tmp_path):
    """The synthetic GGUFs in the real shapes (models/synthetic.py SHAPES, Q4_K_M-like mixes): the
    kernel against the graph under onnxruntime (which models/reference/synthetic_parity.py --full
    holds to transformers), a 64-token prompt and 8 decode steps, 2 threads."""
    from models.synthetic import SHAPES, build_full

    if FULL != "all" and name not in FULL.split(","):
        pytest.skip(f"INTAB_FULL_SHAPES does not name {name}")
    folder = build_full(name, REPO / ".cache", say=lambda *_: None)
    assert misfit(tmp_path, folder) == ""
    vocab = SHAPES[name].vocab
    prompt = [(101 + i * 7919) % vocab for i in range(64)]
    forced = [(13 + i * 104729) % vocab for i in range(8)]
    got = kernel_steps(tmp_path, folder, kernel_dir, prompt, forced, threads=2)["steps"]
    ref = intab_steps(folder, prompt, forced)
    c = compare(as_reference(ref), got)
    print(name, c)
    assert c["max_dlogit"] < TOL and c["max_dlse"] < TOL, c
    assert c["top1"] + c["near_ties"] == c["steps"] and c["top3_missing"] == 0, c
