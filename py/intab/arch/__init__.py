"""Architectures intab runs, one module each (llama, qwen2, qwen3, gemma3): GGUF metadata ->
config.json, GGUF tensor names -> weights, config.json -> what a decoder layer computes.

    from intab import arch
    a = arch.get(meta["general.architecture"])
    config = a.config(meta, tensors)        # tensors: {GGUF name: anything}, only the names are read
    parts = a.parts(meta, tensors)
    recipe = arch.recipe(config)            # from config.json alone (its model_type)

Pure Python (base.py says why). The ONNX writer is models/graph.py; the weights' packing and roles
are models/packed.py; what intab's WASM kernel runs is web/capabilities.mjs.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import gemma3, llama, qwen2, qwen3
from .base import (BLOCK_KINDS, ArchError, Architecture, LayerParts, ModelParts, Recipe, Rope, row_bytes)

ARCHITECTURES: dict[str, Architecture] = {m.ARCH.name: m.ARCH for m in (llama, qwen2, qwen3, gemma3)}
# config.json's model_type -> architecture (gemma3's is gemma3_text)
_BY_MODEL_TYPE = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3"}

__all__ = ["ARCHITECTURES", "BLOCK_KINDS", "ArchError", "Architecture", "LayerParts", "ModelParts", "Recipe", "Rope",
           "get", "name_of", "recipe", "row_bytes"]


def get(name: str) -> Architecture:
    """The module for a GGUF `general.architecture`; ArchError naming the supported ones otherwise."""
    if name not in ARCHITECTURES:
        raise ArchError(f"architecture {name!r} is not supported",
                        f"Supported: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def name_of(config: Mapping[str, Any]) -> str:
    """The architecture of a config.json (by its model_type)."""
    mt = config.get("model_type", "llama")
    if mt not in _BY_MODEL_TYPE:
        raise ArchError(f"model_type {mt!r} is not supported", f"Supported: {', '.join(_BY_MODEL_TYPE)}.")
    return _BY_MODEL_TYPE[mt]


def recipe(config: Mapping[str, Any]) -> Recipe:
    return get(name_of(config)).recipe(config)
