"""A user's GGUF, opened in the tab: its header -> the model folder the worker's loader runs.

The tab (web/gguf_model.mjs) hands the first bytes of a .gguf (a File, a Blob, a URL's body) to
`describe`, which returns what models/prepare.py would have built for the same file, minus
model.onnx (a GGUF opened in the tab runs on intab's WASM kernel only):
- config.json, generation_config.json, tokenizer.json, tokenizer_config.json (texts), from the
  architecture's module (intab.arch) and intab.arch.tokenizer: the same code the build runs;
- manifest.json with the packed weights layout (docs/contracts.md §2): per tensor its role, block
  kind, rows, cols and offset in weights.bin, plus `from`: where its bytes are in the GGUF, so the
  page can assemble weights.bin from slices of the file without Python touching a weight.

What the build does to the blocks, the description says and web/gguf_model.mjs does:
- llama's Q/K rows un-permuted (models/weights.py unpermute_qk): `order`, the GGUF row of each row;
- q/k/v and gate/up stacked by rows into one tensor where the caller asks (`stack`: the kernel's
  KERNEL.layerParts) and the parts share one kind, as models/graph.py's `project` stacks them;
- 1-D weights (norms, biases, rope factors) as F32 vectors: `convert` F16/BF16 widens them exactly,
  `plus_one` turns gemma's stored 1 + w into the multiplier (models/weights.py gemma_norm).

Pure Python on intab.arch (no numpy): Pyodide runs it. tests/test_gguf_model.py checks the
description against the build's folder for the same GGUF, byte for byte.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import arch as archs
from .arch import BLOCK_KINDS, ArchError, row_bytes
from .arch.gguf_reader import MAGIC, Header, TensorInfo, Truncated, read_header
from .arch.tokenizer import tokenizer_files
from .errors import IntabError

SRC_ALIGN = 64          # models/packed.py's alignment of tensors in weights.bin
NUM_CANDIDATES = 64     # models/recipes.py's default sampling-head width
HEAD_BYTES = 8 << 20    # a first read that holds the headers we know (SmolLM2: 1.7 MB, Gemma 3 270M: 6.5 MB)


class ModelFileError(IntabError):
    """A .gguf the tab cannot open; `name` (the class) says which of the reasons below."""

    hint = "Choose a .gguf model file."


class NotGGUF(ModelFileError):
    hint = "Choose a .gguf model file (llama.cpp's format); this one is something else."


class TruncatedFile(ModelFileError):
    hint = "The file is incomplete (an interrupted download?): download it again."


class UnsupportedArchitecture(ModelFileError):
    hint = "Choose a GGUF of a supported architecture."


class UnsupportedBlockKind(ModelFileError):
    hint = "Choose a GGUF quantized to a block kind intab computes (Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, F16 and the like)."


@dataclass(frozen=True)
class Piece:
    """Bytes of the GGUF that make (part of) one layout tensor."""
    at: int                          # file offset
    nbytes: int
    order: tuple[int, ...] = ()      # rows of row_bytes each, in this order (empty: as they are)
    row_bytes: int = 0

    def to_json(self) -> dict:
        d: dict[str, Any] = {"at": self.at, "nbytes": self.nbytes}
        if self.order:
            d.update(order=list(self.order), row_bytes=self.row_bytes)
        return d


def unpermute_order(rows: int, n_head: int) -> tuple[int, ...]:
    """models/weights.py unpermute_qk without numpy: the GGUF row of each row after undoing
    llama.cpp's rope permutation (arange(n).reshape(h, n/h/2, 2).swapaxes(2, 1).reshape(n))."""
    half = rows // n_head // 2
    return tuple(h * 2 * half + 2 * j + p for h in range(n_head) for p in (0, 1) for j in range(half))


def describe(buf, file_size: int, *, name: str = "model.gguf", stack: Sequence[str] = ("qkv", "gate_up"),
             architectures: Sequence[str] | None = None) -> dict:
    """The model folder of a GGUF from its first bytes (at least the header). Raises Truncated
    (with `needed`) when `buf` ends inside the header but the file is longer; the typed errors
    above otherwise. `architectures`: the ones the runtime runs (None: every one intab.arch knows)."""
    if file_size < 4 or bytes(buf[:4]) != MAGIC:
        raise NotGGUF(f"{name} is not a GGUF: it does not start with the bytes 'GGUF'", param="model")
    try:
        header = read_header(buf)
    except Truncated as t:
        if len(buf) >= file_size:
            raise TruncatedFile(f"{name} is truncated: it ends inside its header ({file_size} bytes)", param="model") from None
        raise
    except ArchError as e:
        raise NotGGUF(f"{name} is not a GGUF intab reads: {e.message}", e.hint, param="model") from None
    meta, tensors = header.meta, header.tensors
    arch_name = str(meta.get("general.architecture", "?"))
    supported = [a for a in (architectures or archs.ARCHITECTURES) if a in archs.ARCHITECTURES]
    if arch_name not in supported:
        raise UnsupportedArchitecture(f"{name} is a {arch_name!r} model; the tab runs {', '.join(supported)}",
                                      f"Choose a GGUF of a supported architecture: {', '.join(supported)}.",
                                      param="model")
    for t in tensors.values():
        if t.kind not in BLOCK_KINDS:
            raise UnsupportedBlockKind(f"tensor {t.name} of {name} is GGUF {t.kind}, a block kind intab does not know",
                                       f"Known kinds: {', '.join(BLOCK_KINDS)}.", param="model")
        end = t.offset + t.nbytes
        if end > file_size:
            raise TruncatedFile(f"{name} is truncated: tensor {t.name} ends at byte {end}, the file has {file_size}",
                                param="model")
    a = archs.get(arch_name)
    try:
        config = a.config(meta, tensors)
        parts = a.parts(meta, tensors)
        tok_json, tok_config = tokenizer_files(meta)
    except ArchError as e:
        raise ModelFileError(f"{name}: {e.message}", e.hint or None, param="model") from None
    try:
        layout = _layout(header, config, parts, a, set(stack))
    except ArchError as e:
        raise ModelFileError(f"{name}: {e.message}", e.hint or None, param="model") from None
    pad = meta.get("tokenizer.ggml.padding_token_id")
    generation = {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
                  "pad_token_id": config["eos_token_id"] if pad is None else int(pad)}
    files = {
        "tokenizer.json": json.dumps(tok_json, ensure_ascii=False, separators=(",", ":")),
        "tokenizer_config.json": json.dumps(tok_config, ensure_ascii=False, indent=2),
        "config.json": json.dumps(config, indent=2) + "\n",
        "generation_config.json": json.dumps(generation, indent=2) + "\n",
    }
    # Identity of the file without reading its weights: the header's bytes and the file's size.
    digest = hashlib.sha256(bytes(buf[:header.data_offset]) + str(file_size).encode()).hexdigest()
    manifest = {
        "format": 1, "model_id": name, "version": digest[:16], "architecture": a.name,
        "num_candidates": NUM_CANDIDATES,
        "files": [{"name": n, "size": len(t.encode("utf-8"))} for n, t in files.items()]
        + [{"name": layout["transport"], "size": layout["src_bytes"]}],
        "source": {"name": name, "size": file_size, "header_sha256": digest,
                   "kinds": sorted({t.kind for t in tensors.values()}),
                   "parameters": sum(_count(t) for t in tensors.values())},
        "weights": layout,
    }
    return {"manifest": manifest, "files": files}


def describe_json(buf, file_size: int, name: str, stack, architectures) -> str:
    """`describe` for the worker: a JSON text {ok, value} or {ok: false, error, needed}. One text,
    not a PyProxy tree: the tokenizer alone is ~100,000 strings."""
    try:
        value = describe(buf.to_bytes() if hasattr(buf, "to_bytes") else buf, int(file_size), name=str(name),
                         stack=list(stack), architectures=list(architectures) if architectures else None)
        return json.dumps({"ok": True, "value": value}, ensure_ascii=False)
    except Truncated as t:
        return json.dumps({"ok": False, "needed": t.needed, "error": t.to_dict()})
    except IntabError as e:
        return json.dumps({"ok": False, "error": e.to_dict()})


# -- the layout ------------------------------------------------------------------------------------
def _count(t: TensorInfo) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


class _Layout:
    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.src = 0

    def add(self, role: str, kind: str, rows: int, cols: int, transpose: bool, pieces: list[Piece],
            gguf: list[str], **extra: Any) -> None:
        src = (self.src + SRC_ALIGN - 1) // SRC_ALIGN * SRC_ALIGN
        nbytes = rows * row_bytes(kind, cols)
        self.src = src + nbytes
        self.tensors.append({"name": role, "role": role, "kind": kind, "rows": rows, "cols": cols,
                             "transpose": transpose, "src": src, "gguf": gguf,
                             "from": [p.to_json() for p in pieces], **extra})


def _layout(header: Header, config: Mapping[str, Any], parts, a, stack: set[str]) -> dict:
    """The tensors in models/graph.py's order (embed, rope factors, each layer, lm_head, final
    norm), so offsets equal the build's."""
    T = header.tensors
    out = _Layout()

    def vector(role: str, name: str) -> None:
        t = T[name]
        if t.kind not in ("F32", "F16", "BF16"):
            raise UnsupportedBlockKind(f"tensor {name} is a 1-D {t.kind} weight; intab reads norms and biases as F32, F16 or BF16",
                                       param="model")
        extra = {} if t.kind == "F32" else {"convert": t.kind}
        if a.norm_stored_plus_one and not role.endswith("_bias") and role != "rope_freqs":
            extra["plus_one"] = True
        out.add(role, "F32", 1, _count(t), False, [Piece(t.offset, t.nbytes)], [name], **extra)

    def vectors(role: str, names: list[str]) -> None:
        """Biases stacked like their matrices: F32 pieces one after the other."""
        ts = [T[n] for n in names]
        if any(t.kind != "F32" for t in ts):
            raise UnsupportedBlockKind(f"stacked biases {', '.join(names)} must be F32", param="model")
        out.add(role, "F32", 1, sum(_count(t) for t in ts), False, [Piece(t.offset, t.nbytes) for t in ts], names)

    def matrix_pieces(name: str, heads: int = 0) -> list[Piece]:
        t = T[name]
        rows, cols = t.rows_cols
        if heads:
            return [Piece(t.offset, t.nbytes, unpermute_order(rows, heads), row_bytes(t.kind, cols))]
        return [Piece(t.offset, t.nbytes)]

    def matrix(role: str, name: str, transpose: bool, heads: int = 0) -> None:
        t = T[name]
        if len(t.shape) != 2:
            raise ModelFileError(f"tensor {name} has {len(t.shape)} dimensions, not 2", param="model")
        rows, cols = t.rows_cols
        out.add(role, t.kind, rows, cols, transpose, matrix_pieces(name, heads), [name])

    def stacked(role: str, names: list[str], heads: list[int]) -> None:
        ts = [T[n] for n in names]
        out.add(role, ts[0].kind, sum(t.rows_cols[0] for t in ts), ts[0].rows_cols[1], True,
                [p for n, h in zip(names, heads) for p in matrix_pieces(n, h)], names)

    def project(i: int, names: list[str], heads: list[int], biases: list[str], fused: str, roles: list[str]) -> None:
        kinds = {T[n].kind for n in names}
        if fused in stack and len(kinds) == 1:
            stacked(f"l{i}_{fused}", names, heads)
            if biases[0]:
                vectors(f"l{i}_{fused}_bias", biases)
            return
        for n, h, b, r in zip(names, heads, biases, roles):
            matrix(f"l{i}_{r}", n, True, h)
            if b:
                vector(f"l{i}_{r}_bias", b)

    nh, nkv = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    qh, kh = (nh, nkv) if a.permuted_qk else (0, 0)
    matrix("embed", parts.embed, False)
    if parts.rope_freqs:
        vector("rope_freqs", parts.rope_freqs)
    for i, lp in enumerate(parts.layers):
        vector(f"l{i}_attn_norm", lp.attn_norm)
        project(i, [lp.q, lp.k, lp.v], [qh, kh, 0], [lp.q_bias, lp.k_bias, lp.v_bias], "qkv", ["q", "k", "v"])
        if lp.q_norm:
            vector(f"l{i}_q_norm", lp.q_norm)
            vector(f"l{i}_k_norm", lp.k_norm)
        matrix(f"l{i}_o", lp.o, True)
        if lp.post_attn_norm:
            vector(f"l{i}_post_attn_norm", lp.post_attn_norm)
        vector(f"l{i}_ffn_norm", lp.ffn_norm)
        project(i, [lp.gate, lp.up], [0, 0], ["", ""], "gate_up", ["gate", "up"])
        matrix(f"l{i}_down", lp.down, True)
        if lp.post_ffn_norm:
            vector(f"l{i}_post_ffn_norm", lp.post_ffn_norm)
    if parts.lm_head:
        matrix("lm_head", parts.lm_head, False)
    vector("final_norm", parts.final_norm)
    return {"transport": "weights.bin", "src_bytes": out.src, "tensors": out.tensors}
