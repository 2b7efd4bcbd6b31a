"""Write a llama decoder as an ONNX graph with a KV cache and a sampling head (docs/contracts.md §1).

Hand-built rather than exported from PyTorch: no torch in the build, ~20x fewer nodes than a
torch.onnx export (each node costs time per step in onnxruntime-web), and the weight format is
ours to choose. The arithmetic follows transformers' LlamaForCausalLM (eager attention) step by
step so greedy tokens match it: RMSNorm in fp32 as x * 1/sqrt(mean(x^2) + eps) * w, rotary with
rotate_half, scores scaled after Q.K^T, additive causal mask of float32 min.

The graph ends in a sampling head for the last position: top-K logits, their ids, and the
log-sum-exp of all logits, so that the caller never touches the 49k-wide logits row.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from intab import arch as archs
from intab.arch import Rope

from .weights import (LayerWeights, ModelWeights, QuantBlocks, as_hf, concat_rows, fusable,  # noqa: F401 (re-exported)
                      random_weights, unpermute_qk, weights_from_gguf)

OPSET = 17
# Rotary cos/sin tables are initializers up to this size (SmolLM2: 4.2 MB); beyond it (Gemma 3's
# 32k positions x 256 dims would be 134 MB) the graph computes them from position_ids.
ROPE_TABLE_BYTES = 16 << 20


class _G:
    """Tiny graph-building helper: unique names, initializers, nodes."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, arr: np.ndarray) -> str:
        name = self.name(hint)
        # np.ascontiguousarray would turn 0-d scalars into 1-d arrays
        self.inits.append(numpy_helper.from_array(np.require(arr, requirements='C'), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1,
           outputs: list[str] | None = None, **attrs) -> str | list[str]:
        outs = outputs or [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 and not outputs else outs


def inv_freq(head_dim: int, rope: Rope, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """Rotary frequencies [head_dim / 2], float32 step by step as transformers computes them;
    then divided by llama.cpp's per-frequency factors where the GGUF has them (Llama 3)."""
    dim = head_dim
    exponent = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    inv = (np.float32(1.0) / (np.float32(rope.theta) ** exponent)).astype(np.float32)
    scaling = dict(rope.scaling or {})
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        inv = (inv / np.float32(scaling["factor"])).astype(np.float32)
    elif kind == "llama3":   # transformers' _compute_llama3_parameters
        factor, lo, hi = (np.float32(scaling[k]) for k in ("factor", "low_freq_factor", "high_freq_factor"))
        old = np.float32(scaling["original_max_position_embeddings"])
        wavelen = (np.float32(2 * np.pi) / inv).astype(np.float32)
        llama = np.where(wavelen > old / lo, inv / factor, inv).astype(np.float32)
        smooth = ((old / wavelen - lo) / (hi - lo)).astype(np.float32)
        smoothed = ((1 - smooth) * llama / factor + smooth * llama).astype(np.float32)
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, llama).astype(np.float32)
    elif kind != "default":
        raise ValueError(f"rope scaling {kind!r} is not supported")
    if freq_factors is not None:
        inv = (inv / np.asarray(freq_factors, dtype=np.float32)).astype(np.float32)
    return inv


def rope_tables(cfg, rope: Rope | None = None, freq_factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin tables [max_positions, head_dim], computed in float32 as transformers does."""
    hf = as_hf(cfg)
    rope = rope or Rope(float(hf.get("rope_theta", 10000.0)), hf.get("rope_scaling"))
    inv = inv_freq(hf["head_dim"], rope, freq_factors)
    pos = np.arange(hf["max_position_embeddings"], dtype=np.float32)
    freqs = pos[:, None] * inv[None, :]
    emb = np.concatenate([freqs, freqs], axis=-1).astype(np.float32)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


# The sampling head's inputs beyond num_candidates (docs/contracts.md §1): the mask as an additive
# row (0 allowed, -inf not; [1, 1] zeros when there is none), the repetition penalty's token ids
# (at least one: [0] with penalty 1 when none), and [temperature, top_p, min_p, top_k, penalty, draw].
HEAD_INPUTS = [
    helper.make_tensor_value_info("logit_bias", TensorProto.FLOAT, [1, "bias_length"]),
    helper.make_tensor_value_info("penalized_ids", TensorProto.INT64, ["num_penalized"]),
    helper.make_tensor_value_info("sampling", TensorProto.FLOAT, [6]),
]
# What to feed for the plain top-K of the logits (no mask, no penalty, no draw).
HEAD_DEFAULTS = {"logit_bias": np.zeros((1, 1), np.float32), "penalized_ids": np.zeros(1, np.int64),
                 "sampling": np.array([1, 1, 0, 0, 1, -1], np.float32)}
TAIL_BLOCK = 256                                                 # tokens a block of the tail walk
NUCLEUS_BUCKETS, BUCKETS_PER_LN = 512, 16.0 / float(np.log(2))   # buckets of a factor 2^(1/16) in probability


def sampling_head(g: "_G", logits: str, V: int) -> None:
    """The last position's logits [1, V] -> cand_logits, cand_ids, logsumexp, head_stats.

    s = logits with the repetition penalty (transformers' rule) and the mask. cand_* is the top of s,
    descending, at least num_candidates long and, when top_p < 1, long enough to hold the nucleus at
    the temperature (a histogram of the probabilities finds how many: every token of the bucket
    where the mass crosses top_p comes too). logsumexp is over the raw logits (unconstrained);
    head_stats = [log-sum-exp of s, of s/T, of s/T over the kept tokens (allowed, p >= min_p*p_max),
    tail token]: when top_p == 1 and top_k == 0, the uniform draw u (sampling[5], in [0, 1)) picks
    a token from the kept distribution, candidates first; the tail token is it when it lies beyond
    the candidates (they are walked in id order), else -1.
    """
    def c(hint, value, dtype=np.float32):
        return g.const(hint, np.array(value, dtype=dtype))

    def rsum(x, axes=None, keepdims=0):   # opset 13+: ReduceSum's axes are an input
        return g.op("ReduceSum", [x] + ([c("h_axes", axes, np.int64)] if axes is not None else []), keepdims=keepdims)

    p = {k: g.op("Gather", ["sampling", c(f"h_{k}", i, np.int64)]) for i, k in
         enumerate(("temp", "top_p", "min_p", "top_k", "penalty", "draw"))}
    g.op("ReduceLogSumExp", [logits], outputs=["logsumexp"], axes=[1], keepdims=0)
    pen_ids = g.op("Unsqueeze", ["penalized_ids", c("h_ax0", [0], np.int64)])               # [1, P]
    got = g.op("GatherElements", [logits, pen_ids], axis=1)
    penalized = g.op("Where", [g.op("Greater", [got, c("h_zero", 0.0)]), g.op("Div", [got, p["penalty"]]),
                               g.op("Mul", [got, p["penalty"]])])
    z = g.op("ScatterElements", [logits, pen_ids, penalized], axis=1)
    s = g.op("Add", [z, "logit_bias"])
    lse_allowed = g.op("ReduceLogSumExp", [s], axes=[1], keepdims=0)
    st = g.op("Div", [s, p["temp"]])
    m = g.op("ReduceMax", [st], axes=[1], keepdims=1)
    w = g.op("Exp", [g.op("Sub", [st, m])])                                                 # p / p_max, 0 if masked
    total = rsum(w, [1])
    m0 = g.op("Squeeze", [m, c("h_ax01", [0], np.int64)])
    lse_t = g.op("Add", [m0, g.op("Log", [total])])
    # nucleus: per bucket of -log(w) its mass and count; the first bucket whose running mass reaches
    # top_p * total ends the nucleus; take every token up to that bucket's end
    nb = NUCLEUS_BUCKETS
    depth = g.op("Min", [g.op("Mul", [g.op("Sub", [m, st]), c("h_bpl", BUCKETS_PER_LN)]), c("h_last", nb - 1.0)])
    bucket = g.op("Reshape", [g.op("Cast", [g.op("Floor", [depth])], to=TensorProto.INT64), c("h_flat", [-1], np.int64)])
    zeros = c("h_zeros", np.zeros(nb, np.float32))
    mass = g.op("ScatterElements", [zeros, bucket, g.op("Reshape", [w, c("h_flat2", [-1], np.int64)])],
                axis=0, reduction="add")
    ones = g.op("ConstantOfShape", [g.op("Shape", [bucket])], value=numpy_helper.from_array(np.array([1.0], np.float32)))
    count = g.op("ScatterElements", [zeros, bucket, ones], axis=0, reduction="add")
    below = g.op("Less", [g.op("CumSum", [mass, c("h_ax", 0, np.int64)]), g.op("Mul", [p["top_p"], total])])
    cross = g.op("Min", [rsum(g.op("Cast", [below], to=TensorProto.FLOAT)), c("h_lastb", nb - 1.0)])
    upto = g.op("Gather", [g.op("CumSum", [count, c("h_ax2", 0, np.int64)]), g.op("Cast", [cross], to=TensorProto.INT64)])
    want = g.op("Where", [g.op("Less", [p["top_p"], c("h_one", 1.0)]),
                          g.op("Max", [g.op("Cast", ["num_candidates"], to=TensorProto.FLOAT), upto]),
                          g.op("Cast", ["num_candidates"], to=TensorProto.FLOAT)])
    k = g.op("Cast", [g.op("Min", [want, c("h_V", float(V))])], to=TensorProto.INT64)
    g.op("TopK", [s, g.op("Reshape", [k, c("h_k1", [1], np.int64)])], outputs=["cand_logits", "cand_ids"],
         axis=-1, largest=1, sorted=1)
    # the kept distribution and the tail draw
    kept = g.op("Mul", [w, g.op("Cast", [g.op("GreaterOrEqual", [w, g.op("Max", [p["min_p"], c("h_tiny", 1e-38)])])],
                                     to=TensorProto.FLOAT)])
    kept_total = rsum(kept, [1])
    lse_kept = g.op("Add", [m0, g.op("Log", [kept_total])])
    cand_ones = g.op("ConstantOfShape", [g.op("Shape", ["cand_ids"])], value=numpy_helper.from_array(np.array([1.0], np.float32)))
    is_cand = g.op("ScatterElements", [g.op("Mul", [w, c("h_z2", 0.0)]), "cand_ids", cand_ones], axis=1)
    # the walk in two levels, all float32: WebGPU has no float64 (onnxruntime-web then could not
    # place the Cast nodes of a float64 walk and refused the session), and one float32 running sum
    # over 49k tokens drifts by tens of tokens in the tail. Sums of 256-token blocks, then a running
    # sum over the blocks and one within the chosen block keep every sum under ~450 terms.
    B = TAIL_BLOCK
    nblk = -(-V // B)
    cand_mass = rsum(g.op("Mul", [kept, is_cand]), [1])
    tail_w = g.op("Mul", [kept, g.op("Sub", [c("h_one2", 1.0), is_cand])])               # [1, V]
    blocks = g.op("Reshape", [g.op("Pad", [tail_w, c("h_pads", [0, 0, 0, nblk * B - V], np.int64)]),
                              c("h_blk", [nblk, B], np.int64)])
    blk = rsum(blocks, [1])                                                                 # [nblk]
    blk_run = g.op("CumSum", [blk, c("h_ax3", 0, np.int64)])
    rest = g.op("Sub", [g.op("Mul", [p["draw"], g.op("Add", [cand_mass, rsum(blk)])]), cand_mass])
    j = g.op("Min", [rsum(g.op("Cast", [g.op("LessOrEqual", [blk_run, rest])], to=TensorProto.FLOAT)),
                     c("h_lastblk", float(nblk - 1))])
    j64 = g.op("Cast", [j], to=TensorProto.INT64)
    before = g.op("Gather", [g.op("Sub", [blk_run, blk]), j64])
    row_run = g.op("CumSum", [g.op("Gather", [blocks, j64]), c("h_ax4", 0, np.int64)])     # [B]
    within = rsum(g.op("Cast", [g.op("LessOrEqual", [row_run, g.op("Sub", [rest, before])])], to=TensorProto.FLOAT))
    # rounding may carry a draw near 1 past the last tail token: stop at the last one that has mass
    ids_f = c("h_iota", np.arange(V, dtype=np.float32)[None])
    last = g.op("ReduceMax", [g.op("Mul", [ids_f, g.op("Cast", [g.op("Greater", [tail_w, c("h_z6", 0.0)])],
                                                               to=TensorProto.FLOAT)])], axes=[1], keepdims=0)
    idx = g.op("Min", [g.op("Add", [g.op("Mul", [j, c("h_B", float(B))]), within]), last])
    use = g.op("And", [g.op("And", [g.op("GreaterOrEqual", [rest, c("h_z3", 0.0)]), g.op("GreaterOrEqual", [p["draw"], c("h_z4", 0.0)])]),
                       g.op("And", [g.op("GreaterOrEqual", [p["top_p"], c("h_one3", 1.0)]), g.op("LessOrEqual", [p["top_k"], c("h_z5", 0.0)])])])
    tail = g.op("Where", [use, idx, c("h_m1", [-1.0])])
    g.op("Concat", [g.op("Reshape", [x, c(f"h_r{i}", [1], np.int64)]) for i, x in
                    enumerate((lse_allowed, lse_t, lse_kept, tail))], outputs=["head_stats"], axis=0)


def build_graph(cfg, w: ModelWeights, *, fused: bool = False, head: str = "candidates",
                packer=None, producer: str = "intab") -> onnx.ModelProto:
    """The decoder of cfg's architecture (config.json, or a models.gguf_source.ModelConfig); what a
    layer computes beyond the llama block comes from intab.arch's Recipe for it.

    fused=True uses onnxruntime's contrib ops (SkipSimplifiedLayerNormalization for residual add +
    RMSNorm, GroupQueryAttention on packed QKV with its own rotary): ~9 nodes a layer instead of ~55, at the price of kernels whose rounding
    differs from transformers' in the last bits. The plain llama block only.

    head="candidates" is intab's sampling head (contracts §1). head="logits" gives the layout that
    transformers.js and optimum exports use (inputs attention_mask and position_ids, batch dimension
    named batch_size, `logits` for every position): the same network for the benchmark's
    comparators. Batch size 1 only; attention_mask is accepted and ignored (no padding).

    packer (models.packed.WeightPacker): quantized matrices become external float32 initializers
    that the runtime expands from the shipped blocks, instead of in-graph dequantization."""
    if head not in ("candidates", "logits"):
        raise ValueError(f"unknown head {head!r}")
    hf_cfg = as_hf(cfg)
    r = archs.recipe(hf_cfg)
    if fused and (r.qkv_bias or r.qk_norm or r.post_norms or r.embed_scale or r.activation != "silu"
                  or r.layer_types or w.rope_freqs is not None or hf_cfg.get("rope_scaling")):
        raise ValueError("fused=True builds the plain llama block only")
    hf = head == "logits"
    B = "batch_size" if hf else 1
    g = _G()
    H, nh, nkv, hd = hf_cfg["hidden_size"], hf_cfg["num_attention_heads"], hf_cfg["num_key_value_heads"], hf_cfg["head_dim"]
    n_layers, vocab, eps = hf_cfg["num_hidden_layers"], hf_cfg["vocab_size"], hf_cfg["rms_norm_eps"]
    inter = hf_cfg["intermediate_size"]
    rep = nh // nkv
    f32min = float(np.finfo(np.float32).min)

    # Shared constants
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    c_eps = g.const("eps", np.array(eps, dtype=np.float32))
    c_one = g.const("one", np.array(1.0, dtype=np.float32))
    c_scale = g.const("scale", np.array(r.query_scale, dtype=np.float32))
    c_zero_f = g.const("zero_f", np.array(0.0, dtype=np.float32))
    c_min_f = g.const("min_f", np.array(f32min, dtype=np.float32))
    c_last = g.const("last", np.array(-1, dtype=np.int64))
    c_half = g.const("half", i64(hd // 2, hd // 2))
    c_qkv_split = g.const("qkv_split", i64(nh * hd, nkv * hd, nkv * hd))
    c_ffn_split = g.const("ffn_split", i64(inter, inter))
    c_shape_q = g.const("shape_q", i64(1, -1, nh, hd))
    c_shape_kv = g.const("shape_kv", i64(1, -1, nkv, hd))
    c_shape_gqa = g.const("shape_gqa", i64(1, nkv, -1, hd))      # [1, nkv, rep*S, hd]
    c_shape_heads = g.const("shape_heads", i64(1, nh, -1, hd))   # back to [1, nh, S, hd]
    c_shape_hidden = g.const("shape_hidden", i64(1, -1, nh * hd))  # attention out (Gemma: nh * hd != H)
    c_rep = g.const("rep", i64(rep))
    c_0 = g.const("i0", i64(0))
    c_1 = g.const("i1", i64(1))
    c_s0 = g.const("s0", np.array(0, dtype=np.int64))
    c_s1 = g.const("s1", np.array(1, dtype=np.int64))
    c_sixteen = g.const("sixteen", np.array(16.0, dtype=np.float32))
    c_sixteenth = g.const("sixteenth", np.array(1 / 16, dtype=np.float32))

    def vector(weight: np.ndarray, hint: str) -> str:
        """Norm weights and biases travel in weights.bin too when packed: the kernel reads only that file."""
        if packer is not None:
            name = g.name(hint)
            g.inits.append(packer.add(name, weight.astype(np.float32), transpose=False, role=hint))
            return name
        return g.const(hint, weight.astype(np.float32))

    def rmsnorm(x: str, weight: np.ndarray, hint: str) -> str:
        if fused:
            return g.op("SimplifiedLayerNormalization", [x, vector(weight, hint)],
                        axis=-1, epsilon=eps, stash_type=1)
        sq = g.op("Mul", [x, x])
        var = g.op("ReduceMean", [sq], axes=[-1], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [var, c_eps])])
        inv = g.op("Div", [c_one, std])
        return g.op("Mul", [vector(weight, hint), g.op("Mul", [x, inv])])

    def rope(x: str, cos: str, sin: str) -> str:
        x1, x2 = g.op("Split", [x, c_half], n_out=2, axis=-1)
        rot = g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)
        return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rot, sin])])

    def dense(w, hint: str) -> str:
        """A float32 [out, in] weight: as is, or dequantized from blocks by foldable nodes."""
        if isinstance(w, np.ndarray):
            return g.const(hint, w.astype(np.float32))
        if packer is not None:
            return packed(w, hint, transpose=False)
        out_f, in_f = w.shape
        nb = in_f // 32
        if w.kind not in ("Q4_1", "Q8_0"):
            raise ValueError(f"weight format 'blocks' dequantizes Q4_1 and Q8_0 in the graph, not {w.kind}; use 'packed'")
        blocks = w.raw.reshape(out_f, nb, -1)
        d = g.op("Cast", [g.const(hint + "_d", blocks[:, :, 0:2].copy().view(np.float16))], to=TensorProto.FLOAT)
        if w.kind == "Q4_1":
            m = g.op("Cast", [g.const(hint + "_m", blocks[:, :, 2:4].copy().view(np.float16))], to=TensorProto.FLOAT)
            x = g.op("Cast", [g.const(hint + "_qs", blocks[:, :, 4:20].copy())], to=TensorProto.FLOAT)
            hi = g.op("Floor", [g.op("Mul", [x, c_sixteenth])])          # exact: nibbles as floats
            lo = g.op("Sub", [x, g.op("Mul", [hi, c_sixteen])])
            q = g.op("Concat", [lo, hi], axis=2)                          # weight j, then j+16
            flat = g.op("Add", [g.op("Mul", [d, q]), m])                  # gguf-py: (d * q) + m
        else:
            q = g.op("Cast", [g.const(hint + "_qs", blocks[:, :, 2:34].copy().view(np.int8))], to=TensorProto.FLOAT)
            flat = g.op("Mul", [q, d])                                    # gguf-py: x * d
        return g.op("Reshape", [flat, g.const(hint + "_shape", i64(out_f, in_f))])

    def linear_t(w, hint: str) -> str:
        """[in, out] for MatMul."""
        if isinstance(w, np.ndarray):
            return g.const(hint, np.ascontiguousarray(w.T.astype(np.float32)))
        if packer is not None:
            return packed(w, hint, transpose=True)
        return g.op("Transpose", [dense(w, hint)], perm=[1, 0])

    def packed(w, hint: str, transpose: bool) -> str:
        name = g.name(hint)
        g.inits.append(packer.add(name, w, transpose, role=hint))
        return name

    def project(h: str, ws: list, biases: list, names: list[str], fused_name: str, split: str) -> list[str]:
        """h times each of ws (plus its bias): one MatMul on the stacked rows when they stack (same
        kind), else one each (a Q4_K_M file mixes kinds, e.g. Q5_0 q/k and Q8_0 v)."""
        if fusable(ws):
            y = g.op("MatMul", [h, linear_t(concat_rows(ws), fused_name)])
            if biases[0] is not None:
                y = g.op("Add", [y, vector(np.concatenate(biases), fused_name + "_bias")])
            return g.op("Split", [y, split], n_out=len(ws), axis=-1)
        outs = []
        for wi, bi, name in zip(ws, biases, names):
            y = g.op("MatMul", [h, linear_t(wi, name)])
            outs.append(y if bi is None else g.op("Add", [y, vector(bi, name + "_bias")]))
        return outs

    # Graph inputs
    if hf:
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [B, "sequence_length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [B, "total_sequence_length"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, [B, "sequence_length"]),
        ]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [B, "sequence_length", vocab])]
    else:
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence_length"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "sequence_length"]),
            helper.make_tensor_value_info("num_candidates", TensorProto.INT64, [1]),
            *HEAD_INPUTS,
        ]
        outputs = [
            helper.make_tensor_value_info("cand_logits", TensorProto.FLOAT, [1, "num_returned"]),
            helper.make_tensor_value_info("cand_ids", TensorProto.INT64, [1, "num_returned"]),
            helper.make_tensor_value_info("logsumexp", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("head_stats", TensorProto.FLOAT, [4]),
        ]
    for i in range(n_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, [B, nkv, "past_sequence_length", hd]))
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, [B, nkv, "total_sequence_length", hd]))

    # Embedding, rotary tables gathered once per call
    embed = dense(w.embed, "embed")
    x = g.op("Gather", [embed, "input_ids"], axis=0)                    # [1, S, H]
    if r.embed_scale is not None:   # gemma3: times sqrt(hidden) as a float32 constant, as transformers
        x = g.op("Mul", [x, g.const("embed_scale", np.array(r.embed_scale, dtype=np.float32))])
    types = [t for t in ("full", "sliding") if t in {r.layer_type(i) for i in range(n_layers)}]
    ropes = {t: r.rope.get(t) or Rope(float(hf_cfg.get("rope_theta", 10000.0)), hf_cfg.get("rope_scaling")) for t in types}
    factors = None if w.rope_freqs is None else vector(np.asarray(w.rope_freqs, dtype=np.float32), "rope_freqs")
    rot = {}
    for t in types:
        f = factors if t == "full" else None
        if f is None and hf_cfg["max_position_embeddings"] * hd * 8 <= ROPE_TABLE_BYTES:
            cos_t, sin_t = rope_tables(hf_cfg, ropes[t])
            cos = g.op("Unsqueeze", [g.op("Gather", [g.const("cos", cos_t), "position_ids"], axis=0), c_1])  # [1,1,S,hd]
            sin = g.op("Unsqueeze", [g.op("Gather", [g.const("sin", sin_t), "position_ids"], axis=0), c_1])
        else:   # freqs = position * inv_freq (one rounding, as transformers' matmul of rank 1), then cos/sin
            inv = g.const("inv_freq", inv_freq(hd, ropes[t]))
            if f is not None:   # Llama 3: each frequency divided by its factor (the rope_freqs weight)
                inv = g.op("Div", [inv, f])
            pos = g.op("Unsqueeze", [g.op("Cast", ["position_ids"], to=TensorProto.FLOAT), g.const("i2", i64(2))])
            freqs = g.op("Mul", [pos, inv])                                                # [1, S, hd/2]
            emb = g.op("Concat", [freqs, freqs], axis=-1)
            cos = g.op("Unsqueeze", [g.op("Cos", [emb]), c_1])
            sin = g.op("Unsqueeze", [g.op("Sin", [emb]), c_1])
        rot[t] = (cos, sin)

    # Causal mask [rep*S, T] for the GQA layout (rows ordered rep-major: r*S + s)
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    past_len = g.op("Shape", ["past_key_values.0.key"], start=2, end=3)
    total = g.op("Squeeze", [g.op("Add", [past_len, seq_len]), c_0])
    kpos = g.op("Unsqueeze", [g.op("Range", [c_s0, total, c_s1]), c_0])            # [1, T]
    qpos = g.op("Squeeze", ["position_ids", c_0])                                    # [S]
    qrows = g.op("Unsqueeze", [g.op("Tile", [qpos, c_rep]), c_1])                   # [rep*S, 1]
    allowed = g.op("LessOrEqual", [kpos, qrows])                                     # [rep*S, T]
    masks = {"full": g.op("Where", [allowed, c_zero_f, c_min_f])}
    if "sliding" in types:   # also q - k < window: the window's keys, its own position included (transformers)
        near = g.op("Less", [g.op("Sub", [qrows, kpos]), g.const("window", i64(r.sliding_window))])
        masks["sliding"] = g.op("Where", [g.op("And", [allowed, near]), c_zero_f, c_min_f])
    if fused:  # GroupQueryAttention: seqlens_k is the index of the last key, rotary from half tables
        seqlens_k = g.op("Cast", [g.op("Sub", [g.op("Add", [past_len, seq_len]), c_1])], to=TensorProto.INT32)
        total_i32 = g.op("Cast", [total], to=TensorProto.INT32)
        cos_half = g.const("cos_half", np.ascontiguousarray(cos_t[:, :hd // 2]))
        sin_half = g.const("sin_half", np.ascontiguousarray(sin_t[:, :hd // 2]))

    def attention_fused(i: int, qkv: str) -> str:
        # Packed QKV as the query input (key and value left empty): no Split node.
        return g.op("GroupQueryAttention", [qkv, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value",
                                            seqlens_k, total_i32, cos_half, sin_half],
                    outputs=[g.name("gqa"), f"present.{i}.key", f"present.{i}.value"], domain="com.microsoft",
                    num_heads=nh, kv_num_heads=nkv, do_rotary=1, rotary_interleaved=0, scale=hd ** -0.5)[0]

    def add_norm(x: str, delta: str | None, weight: np.ndarray, hint: str) -> tuple[str, str]:
        """(x + delta, rmsnorm(x + delta)); fused: one SkipSimplifiedLayerNormalization node."""
        if delta is None:
            return x, rmsnorm(x, weight, hint)
        if not fused:
            x = g.op("Add", [x, delta])
            return x, rmsnorm(x, weight, hint)
        normed, total = g.name(hint + "_out"), g.name(hint + "_sum")
        g.op("SkipSimplifiedLayerNormalization", [delta, x, vector(weight, hint)],
             outputs=[normed, "", "", total], domain="com.microsoft", epsilon=eps)
        return total, normed

    def attention_eager(i: int, lw: LayerWeights, q: str, k: str, v: str) -> str:
        cos, sin = rot[r.layer_type(i)]
        q = g.op("Transpose", [g.op("Reshape", [q, c_shape_q])], perm=[0, 2, 1, 3])   # [1, nh, S, hd]
        k = g.op("Transpose", [g.op("Reshape", [k, c_shape_kv])], perm=[0, 2, 1, 3])  # [1, nkv, S, hd]
        v = g.op("Transpose", [g.op("Reshape", [v, c_shape_kv])], perm=[0, 2, 1, 3])
        if r.qk_norm:   # over each head's hd values, before rope
            q = rmsnorm(q, lw.q_norm, f"l{i}_q_norm")
            k = rmsnorm(k, lw.k_norm, f"l{i}_k_norm")
        q = rope(q, cos, sin)
        k = rope(k, cos, sin)
        keys = g.op("Concat", [f"past_key_values.{i}.key", k], axis=2, outputs=[f"present.{i}.key"])[0]
        vals = g.op("Concat", [f"past_key_values.{i}.value", v], axis=2, outputs=[f"present.{i}.value"])[0]
        # Query head h uses kv head h // rep: [1, nh, S, hd] -> [1, nkv, rep*S, hd] is a pure reshape.
        qg = g.op("Reshape", [q, c_shape_gqa])
        scores = g.op("MatMul", [qg, g.op("Transpose", [keys], perm=[0, 1, 3, 2])])   # [1, nkv, rep*S, T]
        scores = g.op("Add", [g.op("Mul", [scores, c_scale]), masks[r.layer_type(i)]])
        probs = g.op("Softmax", [scores], axis=-1)
        attn = g.op("Reshape", [g.op("MatMul", [probs, vals]), c_shape_heads])         # [1, nh, S, hd]
        return g.op("Reshape", [g.op("Transpose", [attn], perm=[0, 2, 1, 3]), c_shape_hidden])

    def activation(gate: str) -> str:
        if r.activation == "silu":
            return g.op("Mul", [gate, g.op("Sigmoid", [gate])])
        if r.activation == "gelu_tanh":   # torch's tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            x3 = g.op("Mul", [g.op("Mul", [gate, gate]), gate])
            inner = g.op("Mul", [g.const("gelu_beta", np.array(np.sqrt(2 / np.pi), np.float32)),
                                 g.op("Add", [gate, g.op("Mul", [g.const("gelu_kappa", np.array(0.044715, np.float32)), x3])])])
            half = g.op("Mul", [g.const("gelu_half", np.array(0.5, np.float32)), gate])
            return g.op("Mul", [half, g.op("Add", [c_one, g.op("Tanh", [inner])])])
        raise ValueError(f"unknown activation {r.activation!r}")

    delta = None   # the residual branch's output, added to x by the next add_norm
    for i, lw in enumerate(w.layers):
        x, h = add_norm(x, delta, lw.attn_norm, f"l{i}_attn_norm")
        if fused:
            qkv = g.op("MatMul", [h, linear_t(concat_rows([lw.q, lw.k, lw.v]), f"l{i}_qkv")])
            attn = attention_fused(i, qkv)
        else:
            q, k, v = project(h, [lw.q, lw.k, lw.v], [lw.q_bias, lw.k_bias, lw.v_bias],
                              [f"l{i}_q", f"l{i}_k", f"l{i}_v"], f"l{i}_qkv", c_qkv_split)
            attn = attention_eager(i, lw, q, k, v)
        delta = g.op("MatMul", [attn, linear_t(lw.o, f"l{i}_o")])
        if r.post_norms:
            delta = rmsnorm(delta, lw.post_attn_norm, f"l{i}_post_attn_norm")

        x, h = add_norm(x, delta, lw.ffn_norm, f"l{i}_ffn_norm")
        gate, up = project(h, [lw.gate, lw.up], [None, None], [f"l{i}_gate", f"l{i}_up"], f"l{i}_gate_up", c_ffn_split)
        act = g.op("Mul", [activation(gate), up])
        delta = g.op("MatMul", [act, linear_t(lw.down, f"l{i}_down")])
        if r.post_norms:
            delta = rmsnorm(delta, lw.post_ffn_norm, f"l{i}_post_ffn_norm")

    out_w = embed if w.lm_head is None else dense(w.lm_head, "lm_head")

    def softcap(logits: str) -> str:
        if not r.final_softcap:
            return logits
        cap = g.const("softcap", np.array(r.final_softcap, np.float32))
        return g.op("Mul", [g.op("Tanh", [g.op("Div", [logits, cap])]), cap])

    if hf:  # logits for every position, [1, S, V]
        rows = g.op("Reshape", [add_norm(x, delta, w.final_norm, "final_norm")[1], g.const("shape_rows", i64(-1, H))])
        logits = softcap(g.op("Gemm", [rows, out_w], transB=1))
        g.op("Reshape", [logits, g.const("shape_logits", i64(1, -1, vocab))], outputs=["logits"])
    else:  # sampling head on the last position only
        if fused:
            last = add_norm(g.op("Gather", [x, c_last], axis=1), g.op("Gather", [delta, c_last], axis=1),
                            w.final_norm, "final_norm")[1]                           # [1, H]
        else:
            last = g.op("Gather", [g.op("Add", [x, delta]), c_last], axis=1)
            last = rmsnorm(last, w.final_norm, "final_norm")
        sampling_head(g, softcap(g.op("Gemm", [last, out_w], transB=1)), vocab)            # logits [1, V]

    used = {name for node in g.nodes for name in node.input}
    graph = helper.make_graph(g.nodes, "intab-decoder", inputs, outputs,
                              initializer=[t for t in g.inits if t.name in used])
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if fused else [])
    model = helper.make_model(graph, opset_imports=opsets,
                              producer_name=producer)
    model.ir_version = 8  # onnxruntime-web 1.30 reads up to 10; 8 is safe everywhere
    return model
