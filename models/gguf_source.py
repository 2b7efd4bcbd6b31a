"""Read a llama-architecture GGUF: metadata, and weights either raw (quantized blocks) or as float32.

Dequantization uses gguf-py, the same code transformers uses when it loads a GGUF, so float
weights here are bit-identical to the reference model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    bos_token_id: int
    eos_token_id: int
    tie_word_embeddings: bool

    def to_hf(self) -> dict:
        d = dict(self.__dict__)
        d.update(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
                 torch_dtype="float32")
        return d


class GGUFModel:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.reader = GGUFReader(str(path))
        self.meta = {k: _field_value(f) for k, f in self.reader.fields.items() if not k.startswith("GGUF.")}
        self.tensors = {t.name: t for t in self.reader.tensors}

    def config(self) -> LlamaConfig:
        m = self.meta
        if m["general.architecture"] != "llama":
            raise ValueError(f"unsupported architecture {m['general.architecture']!r}")
        heads = int(m["llama.attention.head_count"])
        hidden = int(m["llama.embedding_length"])
        return LlamaConfig(
            vocab_size=len(m["tokenizer.ggml.tokens"]),
            hidden_size=hidden,
            intermediate_size=int(m["llama.feed_forward_length"]),
            num_hidden_layers=int(m["llama.block_count"]),
            num_attention_heads=heads,
            num_key_value_heads=int(m["llama.attention.head_count_kv"]),
            head_dim=int(m.get("llama.rope.dimension_count", hidden // heads)),
            rms_norm_eps=float(m["llama.attention.layer_norm_rms_epsilon"]),
            rope_theta=float(m.get("llama.rope.freq_base", 10000.0)),
            max_position_embeddings=int(m["llama.context_length"]),
            bos_token_id=int(m["tokenizer.ggml.bos_token_id"]),
            eos_token_id=int(m["tokenizer.ggml.eos_token_id"]),
            tie_word_embeddings="output.weight" not in self.tensors,
        )

    def blocks(self, name: str):
        """Quantized tensors as their blocks (QuantBlocks, for in-graph dequantization); float ones as float32."""
        from .graph import QuantBlocks
        t = self.tensors[name]
        if t.tensor_type.name not in ("Q4_1", "Q8_0"):
            return self.float32(name)
        raw = np.asarray(t.data)
        out_f, in_f = int(t.shape[1]), int(t.shape[0])
        return QuantBlocks(t.tensor_type.name, raw.reshape(out_f, -1), (out_f, in_f))

    def float32(self, name: str) -> np.ndarray:
        """Dequantized weight in PyTorch layout [out_features, in_features] (or [n] for norms)."""
        t = self.tensors[name]
        w = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        return w.reshape([int(x) for x in reversed(t.shape)])


def _field_value(f):
    try:
        return f.contents()
    except Exception:  # pragma: no cover - unreadable exotic fields are not needed
        return None
