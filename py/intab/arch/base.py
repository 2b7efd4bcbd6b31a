"""What every architecture module provides, and the vocabulary they share.

An architecture module (llama.py, qwen2.py, qwen3.py, gemma3.py) is the only place that knows
its family. It says:
- how the GGUF's metadata becomes `config.json` (Hugging Face names, so transformers reads it),
- which GGUF tensor is which weight (`LayerParts`: attention, MLP, norms, biases),
- what one decoder layer computes (`Recipe`: flags the ONNX writer in models/graph.py and the
  capability table in web/capabilities.mjs read; a new family adds a flag, not a graph),
- the traps of its GGUF files (permuted Q/K, norms stored as 1 + w, hard-coded patterns).

Pure Python with no imports beyond the standard library: the tab (Pyodide) will read a user's GGUF
with this same code (issue 13.5). numpy, onnx and the weights themselves stay in models/.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from intab.errors import IntabError


class ArchError(IntabError):
    """A model this runtime cannot run: unknown architecture, missing tensor, odd metadata."""

    hint = "Use a GGUF of a supported architecture (llama, qwen2, qwen3, gemma3)."


# llama.cpp's GGUF block kinds (ggml_type ids), with the values per block and bytes per block.
# Every kind here travels in weights.bin byte for byte and expands exactly to float32
# (py/intab_host/packed_weights.py, web/weights.mjs), as gguf-py dequantizes it.
BLOCK_KINDS: dict[str, tuple[int, int, int]] = {   # name -> (ggml type id, values per block, bytes per block)
    "F32": (0, 1, 4), "F16": (1, 1, 2), "BF16": (30, 1, 2),
    "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210),
}
KIND_BY_TYPE_ID = {v[0]: k for k, v in BLOCK_KINDS.items()}
# The other ggml_type ids a GGUF may hold (ggml.h), by name only: so that a refusal says
# "Q2_K", the name the file's author chose, rather than a number.
OTHER_TYPE_NAMES = {
    9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
    20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}


def row_bytes(kind: str, cols: int) -> int:
    """Bytes of one row of `cols` values of `kind`; ArchError if cols is not a whole number of blocks."""
    if kind not in BLOCK_KINDS:
        raise ArchError(f"block kind {kind} is not supported",
                        f"Supported kinds: {', '.join(BLOCK_KINDS)}. Re-quantize the GGUF to one of them.")
    _, per, nbytes = BLOCK_KINDS[kind]
    if cols % per:
        raise ArchError(f"a {kind} row of {cols} values is not a whole number of {per}-value blocks")
    return cols // per * nbytes


@dataclass(frozen=True)
class Rope:
    """Rotary embedding of one kind of layer: rotate-half over the whole head, as transformers."""
    theta: float
    scaling: Mapping[str, Any] | None = None   # HF rope_scaling: {"rope_type": "linear", "factor": f}
    # A model with a `rope_freqs` weight (Llama 3) also divides each frequency by its factor there.


@dataclass(frozen=True)
class Recipe:
    """What one decoder layer computes beyond the llama block, read from config.json.

    The llama block: x += o(attn(rope(q(n(x))), rope(k(n(x))), v(n(x)))); x += down(act(gate(n(x))) * up(n(x))),
    n = RMSNorm x / sqrt(mean(x^2) + eps) * w, causal softmax attention with grouped KV heads."""
    qkv_bias: bool = False                 # qwen2: q, k and v projections add a bias
    qk_norm: bool = False                  # qwen3, gemma3: RMSNorm over each head of q and k, before rope
    post_norms: bool = False               # gemma3: RMSNorm on the attention and MLP outputs before the residual add
    norm_plus_one: bool = False            # gemma3: RMSNorm multiplies by (1 + w); see gemma3.py
    embed_scale: float | None = None       # gemma3: embeddings times sqrt(hidden) (a float32 constant)
    activation: str = "silu"               # "silu" or "gelu_tanh" (gemma3's gelu_pytorch_tanh)
    query_scale: float = 0.0               # the factor on q.k; 0: 1/sqrt(head_dim)
    layer_types: tuple[str, ...] = ()      # per layer "full" or "sliding"; () = all full
    sliding_window: int | None = None      # keys a sliding layer sees, its own position included
    rope: Mapping[str, Rope] = field(default_factory=dict)   # layer type -> its rotary embedding
    final_softcap: float | None = None     # logits = cap * tanh(logits / cap) (none of the supported models)

    def layer_type(self, i: int) -> str:
        return self.layer_types[i] if self.layer_types else "full"


@dataclass(frozen=True)
class LayerParts:
    """GGUF tensor names of one decoder layer's weights ('' where the architecture has none)."""
    attn_norm: str
    q: str
    k: str
    v: str
    o: str
    ffn_norm: str
    gate: str
    up: str
    down: str
    q_bias: str = ""
    k_bias: str = ""
    v_bias: str = ""
    q_norm: str = ""
    k_norm: str = ""
    post_attn_norm: str = ""
    post_ffn_norm: str = ""


@dataclass(frozen=True)
class ModelParts:
    embed: str
    final_norm: str
    lm_head: str = ""         # '' when the output layer is tied to the embedding
    rope_freqs: str = ""      # llama.cpp's frequency factors (Llama 3's rope scaling), when present
    layers: tuple[LayerParts, ...] = ()


@dataclass(frozen=True)
class Architecture:
    """One family. `config` maps GGUF metadata (and the tensor names present) to config.json;
    `recipe` reads config.json back into the layer's flags; `parts` names the GGUF tensors."""
    name: str                                   # GGUF general.architecture
    config: Callable[[Mapping[str, Any], Mapping[str, Any]], dict]
    recipe: Callable[[Mapping[str, Any]], Recipe]
    extra_parts: Mapping[str, str] = field(default_factory=dict)   # LayerParts field -> per-layer GGUF suffix
    permuted_qk: bool = False                   # llama.cpp stored Q/K rows permuted for its rope (llama only)
    norm_stored_plus_one: bool = False          # the GGUF's norm weights are 1 + w (gemma)

    def parts(self, meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> ModelParts:
        """The GGUF tensors of a file, checked present (ArchError naming the first missing one)."""
        return gguf_parts(meta, tensors, self.name, **self.extra_parts)

    def parts_for_config(self, config: Mapping[str, Any], rope_freqs: bool = False) -> ModelParts:
        """The GGUF names a config.json implies (tests, synthetic models)."""
        return standard_parts(int(config["num_hidden_layers"]), bool(config.get("tie_word_embeddings", True)),
                              rope_freqs, **self.extra_parts)


# -- metadata helpers shared by the modules ---------------------------------------------------------
def need(meta: Mapping[str, Any], key: str) -> Any:
    if key not in meta or meta[key] is None:
        raise ArchError(f"the GGUF metadata lacks {key}", "The file is incomplete or not a model GGUF.")
    return meta[key]


def vocab_size(meta: Mapping[str, Any], arch: str) -> int:
    """transformers: `<arch>.vocab_size` when present, else the tokenizer's token count."""
    if meta.get(f"{arch}.vocab_size") is not None:
        return int(meta[f"{arch}.vocab_size"])
    return len(need(meta, "tokenizer.ggml.tokens"))


def token_id(meta: Mapping[str, Any], name: str) -> int | None:
    v = meta.get(f"tokenizer.ggml.{name}_token_id")
    return None if v is None else int(v)


def rope_scaling(meta: Mapping[str, Any], arch: str) -> dict | None:
    """`<arch>.rope.scaling.type` linear -> HF {"rope_type": "linear", "factor": f}. Other types
    (yarn, longrope) are refused: none of the supported models uses them."""
    kind = meta.get(f"{arch}.rope.scaling.type")
    if kind in (None, "none"):
        return None
    factor = float(meta.get(f"{arch}.rope.scaling.factor", 1.0))
    if kind == "linear":
        return None if factor == 1.0 else {"rope_type": "linear", "factor": factor}
    raise ArchError(f"rope scaling {kind!r} is not supported", "Supported: none, linear, llama3 (rope_freqs).")


def standard_config(meta: Mapping[str, Any], tensors: Mapping[str, Any], arch: str, head_dim: int) -> dict:
    """The config.json fields every family shares, in the order SmolLM2's config.json has always had."""
    p = arch + "."
    return {
        "vocab_size": vocab_size(meta, arch),
        "hidden_size": int(need(meta, p + "embedding_length")),
        "intermediate_size": int(need(meta, p + "feed_forward_length")),
        "num_hidden_layers": int(need(meta, p + "block_count")),
        "num_attention_heads": int(need(meta, p + "attention.head_count")),
        "num_key_value_heads": int(meta.get(p + "attention.head_count_kv") or need(meta, p + "attention.head_count")),
        "head_dim": head_dim,
        "rms_norm_eps": float(need(meta, p + "attention.layer_norm_rms_epsilon")),
        "rope_theta": float(meta.get(p + "rope.freq_base", 10000.0)),
        "max_position_embeddings": int(need(meta, p + "context_length")),
        "bos_token_id": token_id(meta, "bos"),
        "eos_token_id": token_id(meta, "eos"),
        # transformers: untied only if an output.weight tensor exists (llama.cpp agrees).
        "tie_word_embeddings": "output.weight" not in tensors,
    }


def standard_parts(n_layers: int, tied: bool, rope_freqs: bool = False, **extra: str) -> ModelParts:
    """GGUF names of llama.cpp's common layout; `extra` maps LayerParts fields to per-layer suffixes."""
    layers = []
    for i in range(n_layers):
        b = f"blk.{i}."
        layers.append(LayerParts(
            attn_norm=b + "attn_norm.weight", q=b + "attn_q.weight", k=b + "attn_k.weight", v=b + "attn_v.weight",
            o=b + "attn_output.weight", ffn_norm=b + "ffn_norm.weight", gate=b + "ffn_gate.weight",
            up=b + "ffn_up.weight", down=b + "ffn_down.weight",
            **{k: b + v for k, v in extra.items()}))
    return ModelParts(embed="token_embd.weight", final_norm="output_norm.weight",
                      lm_head="" if tied else "output.weight", rope_freqs="rope_freqs.weight" if rope_freqs else "",
                      layers=tuple(layers))


def gguf_parts(meta: Mapping[str, Any], tensors: Mapping[str, Any], arch: str, **extra: str) -> ModelParts:
    """standard_parts for a GGUF, checked: every tensor named must be in the file."""
    parts = standard_parts(int(need(meta, arch + ".block_count")), "output.weight" not in tensors,
                           "rope_freqs.weight" in tensors, **extra)
    missing = [name for name in _names(parts) if name not in tensors]
    if missing:
        raise ArchError(f"the GGUF lacks tensor {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""),
                        f"The file is not a complete {arch} model.")
    return parts


def _names(parts: ModelParts) -> list[str]:
    out = [parts.embed, parts.final_norm, parts.lm_head, parts.rope_freqs]
    for layer in parts.layers:
        out += [getattr(layer, f) for f in LayerParts.__dataclass_fields__]
    return [n for n in out if n]


def default_query_scale(config: Mapping[str, Any]) -> float:
    """transformers' `head_dim**-0.5` (not 1/sqrt: the two differ in the last bit for some sizes)."""
    return int(config["head_dim"]) ** -0.5
