"""gemma3: Gemma 3 text models (270M, 1B; the larger ones' vision tower is not in their GGUF).

The block: embeddings times sqrt(hidden); four RMSNorms a layer (before and after attention, before
and after the MLP, the "after" ones applied to the branch before the residual add); RMSNorm over
each head of q and k; GeGLU MLP (tanh-approximated GELU on the gate); q.k scaled by
query_pre_attn_scalar^-0.5; five sliding-window layers (local rope base 10,000) to one global layer
(rope base `rope.freq_base`). RMSNorm multiplies by (1 + w).

Traps of its GGUFs (see /work/shared/notes/model.md):
- every `*norm.weight` is stored as 1 + w; transformers subtracts 1 at load and adds it back in
  float32, so the multiplier it uses is fl(1 + fl(w_gguf - 1)), which can differ from w_gguf in the
  last bit. models/ writes that multiplier into weights.bin, so runtimes multiply by it as is.
- the sliding pattern (every 6th layer global) and the local rope base are not in the metadata:
  llama.cpp and transformers both hard-code them, and so does this module.
- query_pre_attn_scalar is not in the metadata either: transformers defaults it to 256 while
  llama.cpp scales by 1/sqrt(head_dim) (hidden/heads for the 27B). The two agree at head_dim 256
  (270M, 1B, 4B, 12B); this module follows llama.cpp and writes the value into config.json.
- model_type is gemma3_text (the GGUF holds the text model only).
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import Architecture, Recipe, Rope, need, rope_scaling, standard_config

NAME = "gemma3"
SLIDING_PATTERN = 6          # layers i with (i + 1) % 6 == 0 are global (transformers, llama.cpp)
LOCAL_ROPE_BASE = 10000.0


def config(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict:
    hidden, heads = int(need(meta, "gemma3.embedding_length")), int(need(meta, "gemma3.attention.head_count"))
    head_dim = int(meta.get("gemma3.attention.key_length") or hidden // heads)
    cfg = standard_config(meta, tensors, NAME, head_dim)
    n = cfg["num_hidden_layers"]
    cfg.update(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", hidden_activation="gelu_pytorch_tanh",
        torch_dtype="float32", pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
        query_pre_attn_scalar=hidden // heads if n == 62 else head_dim,   # llama.cpp: the 27B (62 layers) differs
        sliding_window=int(meta.get("gemma3.attention.sliding_window") or 4096),
        layer_types=["sliding_attention" if (i + 1) % SLIDING_PATTERN else "full_attention" for i in range(n)],
        rope_local_base_freq=LOCAL_ROPE_BASE, final_logit_softcapping=None, attn_logit_softcapping=None)
    scaling = rope_scaling(meta, NAME)
    if scaling:
        cfg["rope_scaling"] = scaling   # global layers only (Gemma3TextConfig)
    return cfg


def recipe(cfg: Mapping[str, Any]) -> Recipe:
    types = tuple("sliding" if t == "sliding_attention" else "full" for t in cfg["layer_types"])
    return Recipe(
        qk_norm=True, post_norms=True, norm_plus_one=True, embed_scale=float(cfg["hidden_size"]) ** 0.5,
        activation="gelu_tanh", query_scale=float(cfg["query_pre_attn_scalar"]) ** -0.5,
        layer_types=types, sliding_window=int(cfg["sliding_window"]),
        rope={"full": Rope(float(cfg.get("rope_theta", 1e6)), cfg.get("rope_scaling")),
              "sliding": Rope(float(cfg.get("rope_local_base_freq", LOCAL_ROPE_BASE)))},
        final_softcap=cfg.get("final_logit_softcapping"))


ARCH = Architecture(NAME, config, recipe, dict(q_norm="attn_q_norm.weight", k_norm="attn_k_norm.weight",
             post_attn_norm="post_attention_norm.weight", post_ffn_norm="post_ffw_norm.weight"), norm_stored_plus_one=True)
