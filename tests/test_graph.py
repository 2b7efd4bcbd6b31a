"""The graph's in-graph dequantization of GGUF blocks equals gguf-py's (what transformers uses),
bit for bit, once onnxruntime has folded it: shipping blocks changes no output."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from models.gguf_source import LlamaConfig
from models.graph import HEAD_DEFAULTS, ModelWeights, QuantBlocks, build_graph, random_weights, unpermute_qk

CFG = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                  rope_theta=10000.0, max_position_embeddings=64, bos_token_id=1, eos_token_id=2,
                  tie_word_embeddings=True)


def random_blocks(kind: str, out_f: int, in_f: int, rng) -> QuantBlocks:
    nb = in_f // 32
    scale = (rng.standard_normal((out_f, nb, 1)) * 0.02).astype(np.float16).view(np.uint8)
    if kind == "Q4_1":
        minimum = (rng.standard_normal((out_f, nb, 1)) * 0.1).astype(np.float16).view(np.uint8)
        qs = rng.integers(0, 256, (out_f, nb, 16), dtype=np.uint8)
        raw = np.concatenate([scale, minimum, qs], axis=2)
    else:
        raw = np.concatenate([scale, rng.integers(0, 256, (out_f, nb, 32), dtype=np.uint8)], axis=2)
    return QuantBlocks(kind, raw.reshape(out_f, -1), (out_f, in_f))


def as_float(w: QuantBlocks) -> np.ndarray:
    return dequantize(w.raw, GGMLQuantizationType[w.kind]).reshape(w.shape).astype(np.float32)


def run(model, ids):
    """One prefill of `ids` from an empty cache: (cand_logits, cand_ids, logsumexp)."""
    return run_steps(model, [ids])[0]


def random_quant_weights(seed: int, rng) -> ModelWeights:
    """random_weights with every matrix as GGUF blocks, as in the real model: Q8_0 embedding, Q4_1 layers."""
    quant = random_weights(CFG, seed=seed)
    quant.embed = random_blocks("Q8_0", CFG.vocab_size, CFG.hidden_size, rng)
    for layer in quant.layers:
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            out_f, in_f = getattr(layer, name).shape
            setattr(layer, name, random_blocks("Q4_1", out_f, in_f, rng))
    return quant


def test_blocks_and_floats_give_identical_outputs():
    quant = random_quant_weights(3, np.random.default_rng(0))
    floats = random_weights(CFG, seed=3)
    floats.embed = as_float(quant.embed)
    for fl, q in zip(floats.layers, quant.layers):
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            setattr(fl, name, as_float(getattr(q, name)))
    ids = [5, 17, 3, 90, 42, 8]
    a = run(build_graph(CFG, quant), ids)
    b = run(build_graph(CFG, floats), ids)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_unpermute_reorders_block_rows_like_float_rows():
    rng = np.random.default_rng(1)
    w = random_blocks("Q4_1", 32, 64, rng)
    assert np.array_equal(as_float(unpermute_qk(w, 4)), unpermute_qk(as_float(w), 4))


def test_fused_graph_agrees_with_the_reference_layout():
    """The opt-in contrib-op graph (GroupQueryAttention, SimplifiedLayerNormalization) computes the
    same function: same candidates in the same order, logits equal to float32 rounding."""
    w = random_weights(CFG, seed=5)
    chunks = [[5, 17, 3, 90, 42], [8], [11, 60], [7]]   # prefill, then steps that use the KV cache
    a = run_steps(build_graph(CFG, w), chunks)
    b = run_steps(build_graph(CFG, w, fused=True), chunks)
    for (la, ia, za), (lb, ib, zb) in zip(a, b):
        assert np.array_equal(ia, ib)
        assert np.allclose(la, lb, atol=1e-4) and np.allclose(za, zb, atol=1e-4)


def run_steps(model, chunks):
    """Run chunks through a model (or a ready session): [(cand_logits, cand_ids, logsumexp)] per chunk."""
    session = model if isinstance(model, ort.InferenceSession) else \
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    past = {f"past_key_values.{i}.{k}": np.zeros((1, 2, 0, 16), np.float32)
            for i in range(CFG.num_hidden_layers) for k in ("key", "value")}
    pos, results = 0, []
    for ids in chunks:
        feeds = {"input_ids": np.array([ids], np.int64), "position_ids": np.arange(pos, pos + len(ids))[None],
                 "num_candidates": np.array([10], np.int64), **HEAD_DEFAULTS, **past}
        out = dict(zip(names, session.run(None, feeds)))
        past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
        pos += len(ids)
        results.append((out["cand_logits"], out["cand_ids"], out["logsumexp"]))
    return results


def test_logits_head_is_the_same_network():
    """head="logits" (the benchmark comparators' layout) computes the logits the sampling head
    ranks: its last row's top-K and log-sum-exp equal the candidates graph's, at every step."""
    w = random_weights(CFG, seed=7)
    chunks = [[5, 17, 3, 90, 42], [8], [11, 60]]
    want = run_steps(build_graph(CFG, w), chunks)
    session = ort.InferenceSession(build_graph(CFG, w, head="logits").SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names[0] == "logits"
    assert session.get_inputs()[0].shape[0] == "batch_size"
    past = {f"past_key_values.{i}.{k}": np.zeros((1, 2, 0, 16), np.float32)
            for i in range(CFG.num_hidden_layers) for k in ("key", "value")}
    pos = 0
    for ids, (cand_logits, cand_ids, lse) in zip(chunks, want):
        feeds = {"input_ids": np.array([ids], np.int64), "position_ids": np.arange(pos, pos + len(ids))[None],
                 "attention_mask": np.ones((1, pos + len(ids)), np.int64), **past}
        out = dict(zip(names, session.run(None, feeds)))
        past = {n.replace("present.", "past_key_values."): v for n, v in out.items() if n.startswith("present.")}
        pos += len(ids)
        assert out["logits"].shape == (1, len(ids), CFG.vocab_size)
        row = out["logits"][0, -1]
        assert np.array_equal(np.argsort(-row, kind="stable")[:10], cand_ids[0])
        assert np.allclose(row[cand_ids[0]], cand_logits[0], atol=1e-5)
        assert np.allclose(np.log(np.exp(row.astype(np.float64)).sum()), lse, atol=1e-4)
