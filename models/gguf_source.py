"""Read a GGUF: metadata, the architecture's config and tensor names, and weights either raw
(their blocks, any kind in intab.arch.BLOCK_KINDS) or as float32.

Dequantization uses gguf-py, the same code transformers uses when it loads a GGUF, so float
weights here are bit-identical to the reference model's. What each architecture's GGUF means is
py/intab/arch's business; this module only reads the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from intab import arch as archs
from intab.arch import BLOCK_KINDS, ArchError, ModelParts, row_bytes

from .weights import QuantBlocks


@dataclass(frozen=True)
class ModelConfig:
    """config.json (Hugging Face names) plus where its weights are in the GGUF."""
    hf: dict
    parts: ModelParts | None = None

    def to_hf(self) -> dict:
        return dict(self.hf)

    @property
    def architecture(self) -> str:
        return archs.name_of(self.hf)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["hf"][key]
        except KeyError:
            raise AttributeError(key) from None


def LlamaConfig(**fields: Any) -> ModelConfig:
    """A llama config from its numbers (tests): the fields and order SmolLM2's config.json has."""
    hf = dict(fields)
    hf.update(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", torch_dtype="float32")
    return ModelConfig(hf)


class GGUFModel:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.reader = GGUFReader(str(path))
        self.meta = {k: _field_value(f) for k, f in self.reader.fields.items() if not k.startswith("GGUF.")}
        self.tensors = {t.name: t for t in self.reader.tensors}

    @property
    def architecture(self) -> str:
        return str(self.meta.get("general.architecture"))

    def config(self) -> ModelConfig:
        """config.json from the metadata, by the architecture's module (ArchError if unsupported)."""
        a = archs.get(self.architecture)
        return ModelConfig(a.config(self.meta, self.tensors), a.parts(self.meta, self.tensors))

    def kind(self, name: str) -> str:
        return self.tensors[name].tensor_type.name

    def blocks(self, name: str):
        """A matrix as its blocks (QuantBlocks, any supported kind, F32/F16/BF16 included); a vector
        (norm weight, bias) as float32 (exact for F16/BF16 too)."""
        t = self.tensors[name]
        kind = t.tensor_type.name
        if kind not in BLOCK_KINDS:
            raise ArchError(f"tensor {name} is {kind}, a block kind intab does not run",
                            f"Supported kinds: {', '.join(BLOCK_KINDS)}. Re-quantize the GGUF to one of them.")
        if len(t.shape) == 1:
            return self.float32(name)
        out_f, in_f = int(t.shape[1]), int(t.shape[0])
        raw = np.asarray(t.data).view(np.uint8).reshape(out_f, row_bytes(kind, in_f))
        return QuantBlocks(kind, raw, (out_f, in_f))

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
