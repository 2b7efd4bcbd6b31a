"""The sampling head with a mask, a repetition penalty, the nucleus and the exact draw, in both
runtimes on the real model: intab's kernel (Node) against the ONNX graph (onnxruntime), and the
graph against its definition (tests/head_reference.py) on random logits."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from head_reference import reference_head
from intab.backend import Head
from intab.constrain import mask_from_ids
from models.graph import HEAD_INPUTS, _G, sampling_head
from test_kernel import kernel_dir, run_kernel  # noqa: F401  (fixture)

PROMPT = [1, 9690, 314, 253, 5885, 30, 2, 198, 1, 520, 9531, 198]


def head_graph(V: int):
    g = _G()
    sampling_head(g, "x", V)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, V]),
              helper.make_tensor_value_info("num_candidates", TensorProto.INT64, [1]), *HEAD_INPUTS]
    outputs = [helper.make_tensor_value_info(n, t, None) for n, t in
               [("cand_logits", TensorProto.FLOAT), ("cand_ids", TensorProto.INT64), ("logsumexp", TensorProto.FLOAT),
                ("head_stats", TensorProto.FLOAT)]]
    m = helper.make_model(helper.make_graph(g.nodes, "head", inputs, outputs, initializer=g.inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def test_graph_head_equals_its_definition_on_random_logits():
    V = 300
    sess = head_graph(V)
    rng = np.random.default_rng(0)
    for trial in range(200):
        z = (rng.standard_normal(V) * rng.uniform(0.5, 4)).astype(np.float32)
        k = int(rng.integers(1, 20))
        T, tp, mp = (float(rng.choice(x)) for x in ([1.0, 0.7, 1.5], [1.0, 0.9, 0.5], [0, 0, 0.05]))
        mask = None if rng.random() < 0.5 else sorted(rng.choice(V, int(rng.integers(1, V)), replace=False).tolist())
        pen, pv = sorted(set(rng.choice(V, 5).tolist())), float(rng.choice([1.0, 1.3]))
        u = float(rng.random()) if rng.random() < 0.8 else -1.0
        bias = np.zeros((1, 1), np.float32) if mask is None else np.full((1, V), -np.inf, np.float32)
        if mask is not None:
            bias[0, mask] = 0
        logits, ids, lse, st = sess.run(None, {"x": z[None], "num_candidates": np.array([k]), "logit_bias": bias,
                                               "penalized_ids": np.array(pen, np.int64),
                                               "sampling": np.array([T, tp, mp, 0, pv, u], np.float32)})
        ref = reference_head(z, k, mask, T, tp, mp, 0, pv, pen, u)
        ids = ids[0].tolist()
        assert ids[:len(ref["ids"])] == ref["ids"], trial
        assert np.allclose(st[:3], [ref["lse_allowed"], ref["lse_t"], ref["lse_kept"]], atol=1e-3)
        assert abs(lse[0] - ref["logsumexp"]) < 1e-3 and int(st[3]) == ref["tail"], trial


HEADS = [
    dict(k=8),
    dict(k=8, mask_ids=list(range(100, 400)) + [2], skip=False),
    dict(k=8, mask_ids=[13, 17, 1000, 30000], skip=True),
    dict(k=16, temperature=0.8, top_p=0.9),
    dict(k=4, temperature=1.0, top_p=0.95, penalty=1.3, penalized=PROMPT),
    dict(k=16, temperature=1.2, draw=0.999),
    dict(k=16, temperature=0.7, min_p=0.05, draw=0.97),
]


def as_head(h: dict, vocab: int) -> Head:
    mask = mask_from_ids(h["mask_ids"], vocab) if "mask_ids" in h else None
    return Head(k=h["k"], mask=mask, temperature=h.get("temperature", 1.0), top_p=h.get("top_p", 1.0),
                min_p=h.get("min_p", 0.0), penalty=h.get("penalty", 1.0), penalized=tuple(h.get("penalized", ())),
                draw=h.get("draw", -1.0), skip_disallowed=h.get("skip", False))


def test_kernel_head_equals_the_graph_head(built_model_dir, kernel_dir, tmp_path):  # noqa: F811
    from intab_host.ort_backend import OrtBackend
    config = json.loads((built_model_dir / "config.json").read_text())
    V = config["vocab_size"]
    js_heads = []
    for h in HEADS:
        hd = as_head(h, V)
        js_heads.append({"mask": list(np.frombuffer(hd.mask, np.uint32).tolist()) if hd.mask else None,
                         "temperature": hd.temperature, "topP": hd.top_p, "minP": hd.min_p, "penalty": hd.penalty,
                         "penalized": list(hd.penalized), "draw": hd.draw, "skipDisallowed": hd.skip_disallowed})
    body = """
const heads = %s;
out.r = [];
for (const h of heads) {
  await b.truncate(0);
  if (h.mask) h.mask = Uint32Array.from(h.mask);
  const r = await b.forward(%s, 0, h.k ?? 8, h);
  out.r.push({ ids: Array.from(r.ids), logits: Array.from(r.logits), lse: r.logsumexp, allowed: r.allowedLogsumexp,
               t: r.lseT, kept: r.lseKept, tail: r.tail });
}
""" % (json.dumps([dict(j, k=h["k"]) for j, h in zip(js_heads, HEADS)]), json.dumps(PROMPT))
    got = run_kernel(tmp_path, built_model_dir, kernel_dir, body)["r"]
    ref = OrtBackend(built_model_dir / "model.onnx", config)

    async def graph():
        out = []
        for h in HEADS:
            await ref.truncate(0)
            out.append(await ref.forward(PROMPT, 0, as_head(h, V)))
        return out

    for h, k, g in zip(HEADS, got, asyncio.run(graph())):
        n = min(len(k["ids"]), len(g.ids))
        assert n >= h["k"] or n == len(h.get("mask_ids", [0] * 99)), (h, k["ids"], g.ids)
        firm = [i for i in range(n - 1) if g.logits[i] - g.logits[i + 1] > 4e-3 and (i == 0 or g.logits[i - 1] - g.logits[i] > 4e-3)]
        assert [k["ids"][i] for i in firm] == [g.ids[i] for i in firm], h
        assert np.allclose(k["logits"][:n], g.logits[:n], atol=2e-3)
        if "mask_ids" in h:
            assert set(k["ids"]) <= set(h["mask_ids"])
        for a, b_ in ((k["allowed"], g.lse_allowed), (k["t"], g.lse_t), (k["kept"], g.lse_kept)):
            assert abs(a - b_) < 2e-3, (h, k, g)
        if h.get("skip") and "mask_ids" in h:
            assert k["lse"] is None or k["lse"] != k["lse"]      # NaN: the rows were skipped
        else:
            assert abs(k["lse"] - g.logsumexp) < 2e-3
        assert k["tail"] == g.tail, (h, k["tail"], g.tail)
        if h.get("draw", -1) >= 0.99:
            assert g.tail >= 0 and g.tail not in g.ids   # a draw past the candidates lands in the tail
