"""qwen3: Qwen3 (dense). The llama block plus an RMSNorm over each head of q and k, before rope.

Traps: head_dim is `qwen3.attention.key_length` (llama.cpp). transformers' mapping ignores it and
Qwen3Config defaults head_dim to 128, so a Qwen3 GGUF whose heads are not 128 wide fails to load
there (every real Qwen3 has 128). No biases, no Q/K permutation.
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import Architecture, Recipe, Rope, default_query_scale, need, rope_scaling, standard_config

NAME = "qwen3"


def config(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict:
    hidden, heads = int(need(meta, "qwen3.embedding_length")), int(need(meta, "qwen3.attention.head_count"))
    cfg = standard_config(meta, tensors, NAME, int(meta.get("qwen3.attention.key_length") or hidden // heads))
    cfg.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_act="silu", torch_dtype="float32",
               attention_bias=False, use_sliding_window=False)
    scaling = rope_scaling(meta, NAME)
    if scaling:
        cfg["rope_scaling"] = scaling
    return cfg


def recipe(cfg: Mapping[str, Any]) -> Recipe:
    return Recipe(qk_norm=True, query_scale=default_query_scale(cfg),
                  rope={"full": Rope(float(cfg.get("rope_theta", 10000.0)), cfg.get("rope_scaling"))})


ARCH = Architecture(NAME, config, recipe, dict(q_norm="attn_q_norm.weight", k_norm="attn_k_norm.weight"))
