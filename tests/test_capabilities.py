"""web/capabilities.mjs, the one table that says what intab's WASM kernel and onnxruntime-web can
run: the real manifests (SmolLM2 and the every-kind synthetic model: the kernel; Gemma 3: the
kernel where its memory fits, onnxruntime either way), and each rule on a manifest changed in one place."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from model_files import node_json

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def verdicts(tmp_path: Path, cases: list[tuple[dict, dict]], backend: str = "wasm") -> list[dict]:
    """[{kernel, ort}] for each (manifest, config), from web/capabilities.mjs under Node."""
    return node_json("capabilities.mjs", "KERNEL, kernelContext, kernelMemory, kernelMisfit, ortMisfit, roleTable",
                     "data.cases.map(([m, c]) => ({ kernel: kernelMisfit(m, c), ort: ortMisfit(m, c, data.backend),"
                     " layers: roleTable(m.weights, c).layers.length, kinds: KERNEL.kinds, context: kernelContext(m.weights, c),"
                     " fitsOneMore: kernelMemory(m.weights, c, kernelContext(m.weights, c) + 256).total <= KERNEL.memoryBytes }))",
                     {"cases": cases, "backend": backend})


def folder(d: Path) -> tuple[dict, dict]:
    return json.loads((d / "manifest.json").read_text()), json.loads((d / "config.json").read_text())


def test_smollm2_runs_on_the_kernel(built_model_dir, tmp_path):
    [v] = verdicts(tmp_path, [folder(built_model_dir)])
    assert {k: v[k] for k in ("kernel", "ort", "layers")} == {"kernel": "", "ort": "", "layers": 30}


def test_gemma3_runs_on_the_kernel_when_it_computes_its_kinds(gemma_dir, tmp_path):
    """The architecture is the kernel's; only block kinds it lacks (if any) send Gemma to onnxruntime."""
    [v] = verdicts(tmp_path, [folder(gemma_dir)])
    assert v["ort"] == "" and v["layers"] == 18
    lacking = sorted({t["kind"] for t in folder(gemma_dir)[0]["weights"]["tensors"]} - set(v["kinds"]))
    if lacking:
        assert v["kernel"].startswith("the kernel cannot compute ") and v["kernel"].split()[4] in lacking, v
    else:
        assert v["kernel"] == "", v


def test_each_kernel_rule_names_what_it_lacks(built_model_dir, tmp_path):
    manifest, config = folder(built_model_dir)

    def changed(edit_manifest=None, edit_config=None):
        m, c = copy.deepcopy(manifest), copy.deepcopy(config)
        if edit_manifest:
            edit_manifest(m)
        if edit_config:
            edit_config(c)
        return m, c

    def tensor(m, role):
        return next(t for t in m["weights"]["tensors"] if t["role"] == role)

    def split_qkv(m):   # a Q4_K_M file whose q, k and v differ in kind: three tensors
        t = tensor(m, "l3_qkv")
        m["weights"]["tensors"].remove(t)
        m["weights"]["tensors"] += [dict(t, role=f"l3_{p}", name=f"l3_{p}") for p in "qkv"]

    cases = [
        changed(lambda m: [t.pop("role") for t in m["weights"]["tensors"]]),
        changed(lambda m: m.update(architecture="mamba")),
        changed(lambda m: tensor(m, "l5_down").update(kind="IQ2_XXS")),
        changed(lambda m: m["weights"]["tensors"].append(dict(tensor(m, "embed"), role="lm_head", name="lm_head"))),
        changed(split_qkv),
        changed(lambda m: m["weights"]["tensors"].append(dict(tensor(m, "l0_attn_norm"), role="l0_q_norm"))),   # no k_norm
        changed(lambda m: m["weights"]["tensors"].remove(tensor(m, "l7_o"))),
        changed(lambda m: m["weights"]["tensors"].append(dict(tensor(m, "l0_attn_norm"), role="l0_mystery"))),
        changed(edit_config=lambda c: c.update(head_dim=48)),
        changed(edit_config=lambda c: c.update(num_hidden_layers=65)),
        changed(edit_config=lambda c: c.update(rope_scaling={"rope_type": "yarn", "factor": 2.0})),
        changed(lambda m: m.pop("architecture")),   # a manifest from before architectures: llama
        changed(edit_config=lambda c: c.update(rope_scaling={"rope_type": "linear", "factor": 2.0})),
        changed(edit_config=lambda c: c.update(hidden_act="relu")),
        changed(edit_config=lambda c: c.update(final_logit_softcapping=30.0)),
        changed(lambda m: split_qkv(m) or m["weights"]["tensors"].remove(tensor(m, "l3_v"))),
        changed(lambda m: m["weights"]["tensors"].append(dict(tensor(m, "l2_gate_up"), role="l2_up", name="l2_up"))),
        changed(edit_config=lambda c: c.update(max_position_embeddings=131072)),
        changed(lambda m: m["weights"].update(src_bytes=4 << 30)),
    ]
    got = [v["kernel"] for v in verdicts(tmp_path, cases)]
    assert got[0] == "the model has no packed weights layout with roles"   # the worker's wording, kept
    assert got[1] == "the kernel runs llama, qwen2, qwen3, gemma3 models, not mamba"
    assert got[2] == "the kernel cannot compute IQ2_XXS blocks (l5_down)"
    assert got[3] == ""   # an untied output layer
    assert got[4] == ""   # q, k and v of different kinds: three parts of one matrix
    assert got[5] == "the kernel needs all of l0_q_norm, l0_k_norm (this model has l0_q_norm)"
    assert got[6] == "the weights layout lacks l7_o"
    assert "does not know tensor" in got[7] and "l0_mystery" in got[7]
    assert got[8] == "the kernel needs head_dim a multiple of 32 (it is 48)"
    assert "at most 64 layers" in got[9] or "lacks" in got[9]
    assert got[10] == "the kernel has no rope scaling of type 'yarn'"
    assert got[11] == "" and got[12] == ""
    assert got[13] == "the kernel has no activation 'relu'"
    assert got[14].startswith("the kernel does not cap logits")
    assert got[15] == "the kernel needs l3_qkv as one tensor or as l3_q, l3_k, l3_v (this model has l3_q, l3_k)"
    assert got[16] == "the kernel needs l2_gate_up as one tensor or as l2_gate, l2_up (this model has l2_gate_up, l2_up)"
    assert got[17] == ""   # 131,072 positions: the kernel runs the context that fits (kernelContext)
    contexts = [(v["context"], v["fitsOneMore"]) for v in verdicts(tmp_path, cases)]
    assert contexts[0] == (8192, True)                     # SmolLM2's whole context fits
    assert 49152 < contexts[17][0] < 131072 and contexts[17][0] % 256 == 0 and not contexts[17][1], contexts[17]
    assert contexts[18][0] == 0
    assert got[18].startswith("the kernel's 4 GiB of memory cannot hold the converted weights (") and "KV cache for 512 tokens" in got[18]


def test_every_block_kind_runs_on_the_kernel(tmp_path):
    """tiny-kinds (models/synthetic.py): every kind, q/k/v and gate/up split by kind, untied."""
    from models.synthetic import TINY, build_model
    [v] = verdicts(tmp_path, [folder(build_model(TINY["tiny-kinds"], tmp_path / "cache", say=lambda *_: None))])
    assert v["kernel"] == "" and v["layers"] == 4


def test_onnxruntime_rules(built_model_dir, tmp_path):
    manifest, config = folder(built_model_dir)
    no_graph = copy.deepcopy(manifest)
    no_graph["files"] = [f for f in no_graph["files"] if f["name"] != "model.onnx"]
    odd = copy.deepcopy(manifest)
    odd["weights"]["tensors"][0]["kind"] = "IQ2_XXS"
    huge = copy.deepcopy(manifest)
    huge["weights"]["f32_bytes"] = 5 * 2 ** 30
    got = [v["ort"] for v in verdicts(tmp_path, [(no_graph, config), (odd, config), (huge, config)])]
    assert got[0] == "the model has no model.onnx"
    assert got[1].startswith("IQ2_XXS blocks cannot be expanded")
    assert "do not fit onnxruntime-web's 4 GiB" in got[2]
    assert verdicts(tmp_path, [(huge, config)], backend="webgpu")[0]["ort"] == ""
