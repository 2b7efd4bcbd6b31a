"""qwen2: Qwen2 and Qwen2.5. The llama block plus a bias on the q, k and v projections.

Traps: the biases are always there (transformers' Qwen2 hard-codes them; no metadata flag says so);
head_dim is hidden / heads (transformers ignores `rope.dimension_count` for qwen2); no Q/K
permutation (llama.cpp converts Qwen with its neox rope, which is rotate-half already).
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import Architecture, Recipe, Rope, default_query_scale, need, rope_scaling, standard_config

NAME = "qwen2"


def config(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict:
    hidden, heads = int(need(meta, "qwen2.embedding_length")), int(need(meta, "qwen2.attention.head_count"))
    cfg = standard_config(meta, tensors, NAME, hidden // heads)
    cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu", torch_dtype="float32",
               use_sliding_window=False)
    scaling = rope_scaling(meta, NAME)
    if scaling:
        cfg["rope_scaling"] = scaling
    return cfg


def recipe(cfg: Mapping[str, Any]) -> Recipe:
    return Recipe(qkv_bias=True, query_scale=default_query_scale(cfg),
                  rope={"full": Rope(float(cfg.get("rope_theta", 10000.0)), cfg.get("rope_scaling"))})


ARCH = Architecture(NAME, config, recipe, dict(q_bias="attn_q.bias", k_bias="attn_k.bias", v_bias="attn_v.bias"))
