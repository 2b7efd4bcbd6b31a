"""A tiny decoder graph with the I/O of contracts.md §1, to test web/bridge.mjs on its own.

It is not a language model: each layer's key/value for a token is a row of a table indexed by
the token id plus its position, and the logits are a linear map of the sum of layer 0's keys
over every cached position. So the candidates depend on the whole KV cache: a bridge that
drops, duplicates or misorders cached positions gets different candidates than onnxruntime
on the CPU (the reference) fed with the full history.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS, KV_HEADS, HEAD_DIM, VOCAB = 2, 3, 4, 50
CONFIG = {"num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
          "vocab_size": VOCAB, "hidden_size": KV_HEADS * HEAD_DIM, "num_attention_heads": KV_HEADS}


def make_tiny_model(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    D = KV_HEADS * HEAD_DIM
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    const("shape_s", np.array([1, -1, KV_HEADS, HEAD_DIM], np.int64))
    const("axes2", np.array([2], np.int64))
    const("shape_d", np.array([1, D], np.int64))
    const("W", (0.05 * rng.standard_normal((D, VOCAB))).astype(np.float32))
    const("P", (0.1 * rng.standard_normal((1, D))).astype(np.float32))
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "S"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "S"]),
        helper.make_tensor_value_info("num_candidates", TensorProto.INT64, [1]),
    ]
    outputs = [
        helper.make_tensor_value_info("cand_logits", TensorProto.FLOAT, [1, "K"]),
        helper.make_tensor_value_info("cand_ids", TensorProto.INT64, [1, "K"]),
        helper.make_tensor_value_info("logsumexp", TensorProto.FLOAT, [1]),
    ]
    # position as float, broadcast onto every feature: [1,S] -> [1,S,1,1]
    nodes.append(helper.make_node("Cast", ["position_ids"], ["pos_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Unsqueeze", ["pos_f", "axes2"], ["pos_f2"]))
    nodes.append(helper.make_node("Unsqueeze", ["pos_f2", "axes2"], ["pos_f3"]))  # [1,S,1,1]
    for i in range(LAYERS):
        for kind in ("key", "value"):
            tab = const(f"T{i}{kind}", rng.standard_normal((VOCAB, D)).astype(np.float32))
            past, present = f"past_key_values.{i}.{kind}", f"present.{i}.{kind}"
            inputs.append(helper.make_tensor_value_info(past, TensorProto.FLOAT, [1, KV_HEADS, "P", HEAD_DIM]))
            outputs.append(helper.make_tensor_value_info(present, TensorProto.FLOAT, [1, KV_HEADS, "T", HEAD_DIM]))
            p = f"l{i}{kind}_"
            nodes += [
                helper.make_node("Gather", [tab, "input_ids"], [p + "g"], axis=0),          # [1,S,D]
                helper.make_node("Reshape", [p + "g", "shape_s"], [p + "r"]),               # [1,S,H,hd]
                helper.make_node("Add", [p + "r", "pos_f3"], [p + "rp"]),
                helper.make_node("Transpose", [p + "rp"], [p + "t"], perm=[0, 2, 1, 3]),    # [1,H,S,hd]
                helper.make_node("Concat", [past, p + "t"], [present], axis=2),
            ]
    nodes += [
        helper.make_node("ReduceSum", ["present.0.key", "axes2"], ["ksum"], keepdims=0),   # [1,H,hd]
        helper.make_node("ReduceSum", ["present.1.value", "axes2"], ["vsum"], keepdims=0),
        helper.make_node("Add", ["ksum", "vsum"], ["hsum"]),
        helper.make_node("Reshape", ["hsum", "shape_d"], ["h"]),                            # [1,D]
        helper.make_node("Mul", ["h", "P"], ["hp"]),
        helper.make_node("Add", ["h", "hp"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W"], ["logits"]),                                # [1,V]
        helper.make_node("TopK", ["logits", "num_candidates"], ["cand_logits", "cand_ids"], axis=-1),
        helper.make_node("ReduceLogSumExp", ["logits"], ["logsumexp"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "tiny_decoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference_forward(model_bytes: bytes, history: list[int], new: list[int], k: int):
    """onnxruntime (CPU) on the whole sequence at once: candidates after history+new."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    ids = history + new
    feeds = {
        "input_ids": np.array([ids], np.int64),
        "position_ids": np.arange(len(ids), dtype=np.int64)[None],
        "num_candidates": np.array([k], np.int64),
    }
    for i in range(LAYERS):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros((1, KV_HEADS, 0, HEAD_DIM), np.float32)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return {"logits": out["cand_logits"][0].tolist(), "ids": out["cand_ids"][0].tolist(),
            "logsumexp": float(out["logsumexp"][0])}


if __name__ == "__main__":
    b = make_tiny_model()
    print(len(b), reference_forward(b, [1, 2, 3], [4], 5))
