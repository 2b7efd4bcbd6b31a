"""llama: SmolLM2, TinyLlama, Llama 3.x (and Mistral-style GGUFs that call themselves llama).

The plain block (base.Recipe's defaults): RMSNorm, rotate-half rope, grouped KV heads, SiLU MLP.
Traps of its GGUFs:
- llama.cpp's converter permutes the rows of Q and K for its interleaved rope; transformers (and
  intab) undo it (`permuted_qk`). Only rows move, so quantized blocks (which run along a row) stay whole.
- head_dim is `llama.rope.dimension_count` (transformers' mapping), else hidden / heads.
- Llama 3.x's rope scaling is not in the metadata: the converter writes the frequency divisors as a
  tensor, `rope_freqs.weight` (llama.cpp divides each frequency by its factor). transformers'
  GGUF loader ignores that tensor; intab applies it, so Llama 3 runs as published. A linear
  `llama.rope.scaling.type` becomes config.json's rope_scaling.
"""
from __future__ import annotations

from typing import Any, Mapping

from .base import Architecture, Recipe, Rope, default_query_scale, need, rope_scaling, standard_config

NAME = "llama"


def config(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict:
    hidden, heads = int(need(meta, "llama.embedding_length")), int(need(meta, "llama.attention.head_count"))
    cfg = standard_config(meta, tensors, NAME, int(meta.get("llama.rope.dimension_count") or hidden // heads))
    cfg.update(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", torch_dtype="float32")
    scaling = rope_scaling(meta, NAME)
    if scaling:
        cfg["rope_scaling"] = scaling
    return cfg


def recipe(cfg: Mapping[str, Any]) -> Recipe:
    rope = Rope(float(cfg.get("rope_theta", 10000.0)), cfg.get("rope_scaling"))
    return Recipe(query_scale=default_query_scale(cfg), rope={"full": rope})


ARCH = Architecture(NAME, config, recipe, permuted_qk=True)
