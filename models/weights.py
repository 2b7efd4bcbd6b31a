"""A model's weights as the graph writer takes them: GGUF blocks kept whole, or float32 arrays.

`weights_from_gguf` is where an architecture's GGUF names (py/intab/arch) meet the weights:
it un-permutes llama's Q/K rows and turns gemma's stored 1 + w norms into the multiplier
transformers uses. `random_weights` makes a small model of any architecture for tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from intab import arch as archs
from intab.arch import ModelParts, row_bytes


@dataclass(frozen=True)
class QuantBlocks:
    """A GGUF matrix kept as its bytes (blocks of any kind in intab.arch.BLOCK_KINDS, or F32/F16/BF16
    values), PyTorch layout [out_features, in_features], one row of blocks per output row.

    Shipped as is (weights.bin, the transport format); runtimes expand it exactly to the float32
    gguf-py computes (packed_weights.py, web/weights.mjs) or compute on the blocks (web/kernel)."""
    kind: str
    raw: np.ndarray        # uint8 [out, bytes_per_row]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if self.raw.shape != (self.shape[0], row_bytes(self.kind, self.shape[1])):
            raise ValueError(f"{self.kind} blocks of shape {self.raw.shape} for a {self.shape} matrix")

    def rows(self, order: np.ndarray) -> "QuantBlocks":
        return QuantBlocks(self.kind, self.raw[order], self.shape)


def concat_rows(parts: list) -> "np.ndarray | QuantBlocks":
    """Stack matrices by rows: float32 arrays, or blocks of one kind."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    kinds = {p.kind for p in parts if isinstance(p, QuantBlocks)}
    if len(kinds) != 1 or not all(isinstance(p, QuantBlocks) for p in parts):
        raise ValueError("cannot fuse weights of different formats")
    return QuantBlocks(kinds.pop(), np.concatenate([p.raw for p in parts]),
                       (sum(p.shape[0] for p in parts), parts[0].shape[1]))


def fusable(parts: list) -> bool:
    """Whether concat_rows can stack these (float32 arrays, or blocks all of one kind)."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return True
    return all(isinstance(p, QuantBlocks) for p in parts) and len({p.kind for p in parts}) == 1


@dataclass
class LayerWeights:
    """One decoder layer, PyTorch layout [out_features, in_features]; vectors are float32 [n].
    The optional parts are None where the architecture has none (intab.arch.Recipe says which)."""
    attn_norm: np.ndarray
    q: Any
    k: Any
    v: Any
    o: Any
    ffn_norm: np.ndarray
    gate: Any
    up: Any
    down: Any
    q_bias: np.ndarray | None = None
    k_bias: np.ndarray | None = None
    v_bias: np.ndarray | None = None
    q_norm: np.ndarray | None = None
    k_norm: np.ndarray | None = None
    post_attn_norm: np.ndarray | None = None
    post_ffn_norm: np.ndarray | None = None


@dataclass
class ModelWeights:
    embed: Any                     # [vocab, hidden]; also the output layer when tied
    layers: list[LayerWeights]
    final_norm: np.ndarray
    lm_head: Any = None            # [vocab, hidden] when not tied
    rope_freqs: np.ndarray | None = None   # [head_dim / 2] frequency divisors (Llama 3), or None


def unpermute_qk(w, n_head: int):
    """Undo llama.cpp's convert-time permutation of Q/K rows (interleaved rope -> rotate_half).
    It only reorders output rows, so quantized blocks (which run along input columns) survive it."""
    n = w.shape[0]
    order = np.arange(n).reshape(n_head, n // n_head // 2, 2).swapaxes(2, 1).reshape(n)
    return w[order] if isinstance(w, np.ndarray) else w.rows(order)


def gemma_norm(w: np.ndarray) -> np.ndarray:
    """The multiplier transformers' Gemma RMSNorm uses for a GGUF norm weight stored as 1 + w:
    it loads w - 1 (float32) and multiplies by 1.0 + that, in float32."""
    w = np.asarray(w, dtype=np.float32)
    return (np.float32(1.0) + (w - np.float32(1.0))).astype(np.float32)


def weights_from_gguf(cfg, load: Callable[[str], Any], parts: ModelParts | None = None) -> ModelWeights:
    """Collect the weights by GGUF tensor name; `load(name)` returns a tensor (blocks or float32).
    `parts` (intab.arch) defaults to the standard names for cfg's architecture."""
    hf = as_hf(cfg)
    a = archs.get(archs.name_of(hf))
    parts = parts or a.parts_for_config(hf)
    vec = (lambda n: gemma_norm(load(n))) if a.norm_stored_plus_one else load
    opt = lambda n, f=load: f(n) if n else None  # noqa: E731
    layers = []
    for lp in parts.layers:
        q, k = load(lp.q), load(lp.k)
        if a.permuted_qk:
            q, k = unpermute_qk(q, hf["num_attention_heads"]), unpermute_qk(k, hf["num_key_value_heads"])
        layers.append(LayerWeights(
            attn_norm=vec(lp.attn_norm), q=q, k=k, v=load(lp.v), o=load(lp.o), ffn_norm=vec(lp.ffn_norm),
            gate=load(lp.gate), up=load(lp.up), down=load(lp.down),
            q_bias=opt(lp.q_bias), k_bias=opt(lp.k_bias), v_bias=opt(lp.v_bias),
            q_norm=opt(lp.q_norm, vec), k_norm=opt(lp.k_norm, vec),
            post_attn_norm=opt(lp.post_attn_norm, vec), post_ffn_norm=opt(lp.post_ffn_norm, vec)))
    return ModelWeights(embed=load(parts.embed), layers=layers, final_norm=vec(parts.final_norm),
                        lm_head=opt(parts.lm_head), rope_freqs=opt(parts.rope_freqs))


def as_hf(cfg) -> dict:
    """config.json as a dict, from a dict or an object with to_hf() (models.gguf_source.ModelConfig)."""
    return cfg.to_hf() if hasattr(cfg, "to_hf") else dict(cfg)


def random_weights(cfg, seed: int = 0) -> ModelWeights:
    """Small random model of cfg's architecture (float32), for fast tests of the runtime plumbing."""
    hf = as_hf(cfg)
    r = archs.recipe(hf)
    rng = np.random.default_rng(seed)
    H, I, hd = hf["hidden_size"], hf["intermediate_size"], hf["head_dim"]
    nq, nkv = hf["num_attention_heads"] * hd, hf["num_key_value_heads"] * hd
    m = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    ones = lambda n: (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    layers = []
    for _ in range(hf["num_hidden_layers"]):
        lw = LayerWeights(ones(H), m(nq, H), m(nkv, H), m(nkv, H), m(H, nq), ones(H), m(I, H), m(I, H), m(H, I))
        if r.qkv_bias:
            lw.q_bias, lw.k_bias, lw.v_bias = m(nq), m(nkv), m(nkv)
        if r.qk_norm:
            lw.q_norm, lw.k_norm = ones(hd), ones(hd)
        if r.post_norms:
            lw.post_attn_norm, lw.post_ffn_norm = ones(H), ones(H)
        layers.append(lw)
    lm_head = None if hf.get("tie_word_embeddings", True) else m(hf["vocab_size"], H)
    return ModelWeights(m(hf["vocab_size"], H), layers, ones(H), lm_head)

