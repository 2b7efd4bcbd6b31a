"""Parity for shapes we cannot download: models/synthetic.py's tiny GGUFs (one per family and
trap: llama, Llama 3 rope factors + untied head, qwen2 biases, qwen3 QK-norm at head_dim 128,
gemma3 with a sliding window shorter than the prompt, and a llama in every block kind), built by
intab's own pipeline (GGUF -> config, graph, packed weights), run by onnxruntime, against
transformers' logits on the same files (tests/golden/synthetic.json, written by
models/reference/synthetic_parity.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.parity import compare, intab_steps
from models.synthetic import TINY, build_model, sha256, write_gguf

GOLDEN = Path(__file__).resolve().parent / "golden" / "synthetic.json"
CASES = json.loads(GOLDEN.read_text())["cases"]
# float32 noise between torch and onnxruntime (different sum orders, exp/tanh kernels): measured
# max |dlogit| 2e-6..3e-5 on these models; the bound leaves room for other CPUs' kernels.
TOL = 2e-4


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic-cache")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_graph_logits_equal_transformers(case, cache, tmp_path):
    shape = TINY[case["name"]]
    assert sha256(write_gguf(shape, tmp_path / "x.gguf")) == case["gguf_sha256"], \
        "models/synthetic.py no longer writes the file the reference saw: rerun models/reference/synthetic_parity.py"
    folder = build_model(shape, cache, say=lambda *_: None)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"] == case["arch"]
    got = intab_steps(folder, case["prompt_ids"], case["greedy_ids"])
    c = compare(case, got)
    print(case["name"], c)
    assert c["max_dlogit"] < TOL and c["max_dlse"] < TOL, c
    assert c["top1"] + c["near_ties"] == c["steps"] and c["top3_missing"] == 0, c


def test_the_tiny_models_cover_every_kind_and_trap():
    kinds = set()
    for c in CASES:
        kinds |= {t for t in TINY[c["name"]].kinds}
    assert kinds >= {"F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F32"}
    assert {c["arch"] for c in CASES} == {"llama", "qwen2", "qwen3", "gemma3"}
    assert any(not TINY[c["name"]].tied for c in CASES) and any(TINY[c["name"]].tied for c in CASES)
    gemma = TINY["tiny-gemma3"]
    assert gemma.sliding_window < len(CASES[0]["prompt_ids"]) and gemma.layers >= 6   # a global layer, a used window
