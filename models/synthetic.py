"""Synthetic GGUFs: random weights in the real shapes and metadata of models we cannot download,
quantized in a Q4_K_M-like mix, written with the `gguf` package as llama.cpp lays them out.

    python -m models.synthetic --full smollm2-360m,qwen2.5-0.5b,qwen3-0.6b,llama3.2-1b   # .cache/build/synthetic-*
    python -m models.synthetic --tiny all --out /tmp/x                                  # the test suite's

`SHAPES` holds the full shapes (for `build.py bench`: `build_full(name, cache)` returns the model
folder, its GGUF beside it for wllama); `TINY` small versions of each family that keep what the
family's code paths depend on (head_dim 128 for qwen3, a sliding window shorter than the test
prompt for gemma3, rope factors and an untied output for Llama 3, every block kind in `kinds`).
Parity with transformers on the same files: models/reference/synthetic_parity.py (reference env),
whose recorded logits tests/test_synthetic.py checks onnxruntime against.

The mix follows llama.cpp's Q4_K_M: Q6_K for the output layer (the embedding when tied) and for
attn_v / ffn_down in the first and last eighth of the layers and every third layer between, Q4_K
for the other matrices; where a row is not a whole number of 256-value super-blocks (a hidden size
of 896 or 640), Q4_K falls back to Q5_0 and Q6_K to Q8_0, as llama.cpp does. Vectors are F32.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .kquants import QUANTIZERS

FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str                 # GGUF general.architecture
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    context: int
    rope_theta: float
    eps: float
    tied: bool = True
    llama3_rope: dict | None = None       # Llama 3's rope scaling, written as rope_freqs like llama.cpp
    sliding_window: int = 0               # gemma3
    kinds: tuple[str, ...] = ()           # cycle every layer matrix through these kinds instead of the mix
    edge_kind: str = ""                   # with kinds: the embedding's and output layer's kind too (else the mix's)
    seed: int = 0
    extra_meta: dict = field(default_factory=dict)


SHAPES = {s.name: s for s in (
    Shape("smollm2-360m", "llama", 960, 32, 15, 5, 64, 2560, 49152, 8192, 100000.0, 1e-5),
    Shape("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 32768, 1000000.0, 1e-6),
    Shape("qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1000000.0, 1e-6),
    Shape("llama3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000.0, 1e-5,
          llama3_rope={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192}),
)}

TINY = {s.name: s for s in (
    Shape("tiny-llama", "llama", 256, 2, 4, 2, 64, 512, 384, 256, 100000.0, 1e-5, seed=1),
    Shape("tiny-llama3", "llama", 256, 2, 4, 1, 64, 512, 384, 256, 500000.0, 1e-5, tied=False, seed=2,
          llama3_rope={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 64}),
    Shape("tiny-qwen2", "qwen2", 192, 2, 3, 1, 64, 512, 384, 256, 1000000.0, 1e-6, seed=3),
    Shape("tiny-qwen3", "qwen3", 256, 2, 2, 1, 128, 512, 384, 256, 1000000.0, 1e-6, tied=False, seed=4),
    Shape("tiny-gemma3", "gemma3", 128, 7, 2, 1, 64, 256, 384, 256, 1000000.0, 1e-6, sliding_window=5, seed=5),
    Shape("tiny-kinds", "llama", 256, 4, 4, 2, 64, 512, 384, 256, 10000.0, 1e-5, tied=False, seed=6,
          kinds=("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F32")),
)}


# -- tokenizer: a byte-level BPE of the wanted size (bytes, then merges of earlier tokens) ---------
def byte_unicode() -> list[str]:
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    return [table[b] for b in range(256)]


def synthetic_vocab(size: int, seed: int = 0) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): 256 byte tokens, merges of common English pairs then of random
    earlier tokens, and <|endoftext|> (control) last; `size` tokens in all."""
    alphabet = byte_unicode()
    tokens = list(alphabet)
    seen = set(tokens)
    merges: list[str] = []
    rng = np.random.default_rng(seed)
    common = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s"),
              ("r", "e"), ("a", "t"), ("e", "n"), ("Ġ", "o"), ("Ġ", "w"), ("o", "r"), ("i", "s"), ("Ġ", "c")]
    pairs = iter(common)
    while len(tokens) < size - 1:
        pair = next(pairs, None)
        if pair is None:
            a, b = tokens[rng.integers(0, len(tokens))], tokens[rng.integers(0, len(tokens))]
            pair = (a, b)
        new = pair[0] + pair[1]
        if new in seen or pair[0] not in seen or pair[1] not in seen or len(new) > 12:
            continue
        seen.add(new)
        tokens.append(new)
        merges.append(f"{pair[0]} {pair[1]}")
    tokens.append("<|endoftext|>")
    types = [1] * (len(tokens) - 1) + [3]
    return tokens, types, merges


# -- weights ---------------------------------------------------------------------------------------
def mix_kind(shape: Shape, name: str, layer: int, cols: int, counter: list[int]) -> str:
    """The block kind of a matrix in the Q4_K_M-like mix (or the shape's cycle of kinds)."""
    if shape.kinds and shape.edge_kind and name in ("token_embd", "output"):
        return shape.edge_kind
    if shape.kinds and name not in ("token_embd", "output"):
        kind = shape.kinds[counter[0] % len(shape.kinds)]
        counter[0] += 1
    elif name == "output" or (name == "token_embd" and shape.tied):
        kind = "Q6_K"
    elif name == "token_embd":
        kind = "Q4_K"
    elif name in ("attn_v", "ffn_down"):
        n = shape.layers
        more = layer < n // 8 or layer >= 7 * n // 8 or (layer - n // 8) % 3 == 2
        kind = "Q6_K" if more else "Q4_K"
    else:
        kind = "Q4_K"
    if kind.endswith("_K") and cols % 256:
        kind = FALLBACK[kind]
    return kind


def quantize(w: np.ndarray, kind: str) -> np.ndarray:
    """[rows, cols] float32 -> the GGUF bytes [rows, row bytes] of `kind` (F32/F16/BF16 as values)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize as gguf_quantize

    if kind in QUANTIZERS:
        return QUANTIZERS[kind](w)
    if kind == "F32":
        return w.astype(np.float32)
    if kind == "F16":
        return w.astype(np.float16)
    return gguf_quantize(w, GGMLQuantizationType[kind])


def write_gguf(shape: Shape, path: Path, say=print) -> Path:
    """Write the synthetic GGUF of `shape` to `path` (deterministic: same shape, same bytes)."""
    import gguf

    rng = np.random.default_rng(shape.seed)
    H, hd, L = shape.hidden, shape.head_dim, shape.layers
    nq, nkv = shape.heads * hd, shape.kv_heads * hd
    a = shape.arch
    tmp = path.with_suffix(".part")
    w = gguf.GGUFWriter(str(tmp), a)
    w.add_name(f"intab synthetic {shape.name}")
    w.add_block_count(L)
    w.add_context_length(shape.context)
    w.add_embedding_length(H)
    w.add_feed_forward_length(shape.intermediate)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_layer_norm_rms_eps(shape.eps)
    w.add_rope_freq_base(shape.rope_theta)
    if a == "llama":
        w.add_rope_dimension_count(hd)
    if a in ("qwen3", "gemma3"):
        w.add_key_length(hd)
        w.add_value_length(hd)
    if a == "gemma3":
        w.add_sliding_window(shape.sliding_window)
    w.add_file_type(15)   # MOSTLY_Q4_K_M
    tokens, types, merges = synthetic_vocab(shape.vocab, shape.seed)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 1)
    w.add_eos_token_id(len(tokens) - 1)
    for k, v in shape.extra_meta.items():
        w.add_string(k, v)

    counter = [0]
    norm = lambda n: (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731

    def mat(name: str, rows: int, cols: int, layer: int = 0, scale: float | None = None) -> None:
        x = (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(scale or cols ** -0.5))
        kind = mix_kind(shape, name.split(".")[-2] if "." in name else name, layer, cols, counter)
        data = quantize(x, kind)
        w.add_tensor(name, data, raw_dtype=None if kind in ("F32", "F16") else gguf.GGMLQuantizationType[kind])

    def vec(name: str, v: np.ndarray) -> None:
        w.add_tensor(name, v.astype(np.float32))

    mat("token_embd.weight", shape.vocab, H, scale=0.05 if shape.tied else 1.0)
    vec("output_norm.weight", norm(H))   # gemma3: read as 1 + w, as llama.cpp's converter stores them
    if not shape.tied:
        mat("output.weight", shape.vocab, H, scale=0.05)
    if shape.llama3_rope:
        vec("rope_freqs.weight", llama3_factors(hd, shape.rope_theta, shape.llama3_rope))
    for i in range(L):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", norm(H))
        mat(p + "attn_q.weight", nq, H, i)
        mat(p + "attn_k.weight", nkv, H, i)
        mat(p + "attn_v.weight", nkv, H, i)
        if a == "qwen2":
            for n, size in (("q", nq), ("k", nkv), ("v", nkv)):
                vec(p + f"attn_{n}.bias", (0.1 * rng.standard_normal(size)).astype(np.float32))
        if a in ("qwen3", "gemma3"):
            vec(p + "attn_q_norm.weight", norm(hd))
            vec(p + "attn_k_norm.weight", norm(hd))
        mat(p + "attn_output.weight", H, nq, i)
        if a == "gemma3":
            vec(p + "post_attention_norm.weight", norm(H))
        vec(p + "ffn_norm.weight", norm(H))
        mat(p + "ffn_gate.weight", shape.intermediate, H, i)
        mat(p + "ffn_up.weight", shape.intermediate, H, i)
        mat(p + "ffn_down.weight", H, shape.intermediate, i)
        if a == "gemma3":
            vec(p + "post_ffw_norm.weight", norm(H))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)
    return path


def llama3_factors(head_dim: int, theta: float, p: dict) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf rope_freqs for Llama 3's rope scaling: each frequency's divisor."""
    import math

    freqs = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factor, lo, hi, old = p["factor"], p["low_freq_factor"], p["high_freq_factor"], p["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / lo, old / hi
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def build_model(shape: Shape, cache: Path, say=print) -> Path:
    """The GGUF (cache/sources/synthetic-<name>/) and the browser folder built from it
    (cache/build/synthetic-<name>/), each made once; returns the folder."""
    from .prepare import prepare
    from .recipes import Recipe

    src = cache / "sources" / f"synthetic-{shape.name}"
    src.mkdir(parents=True, exist_ok=True)
    gguf_path = src / f"{shape.name}.gguf"
    if not gguf_path.exists():
        say(f"  [synthetic] writing {gguf_path}")
        write_gguf(shape, gguf_path, say)
    recipe = Recipe(model_id=f"synthetic-{shape.name}", pip_package="", pip_version="", gguf_member=gguf_path.name,
                    generation={"do_sample": False, "max_new_tokens": 128})
    return prepare(recipe, cache)


def build_full(name: str, cache: Path, say=print) -> Path:
    """The full-shape folder for `build.py bench` (SHAPES' names); its GGUF is .gguf_path(name, cache)."""
    return build_model(SHAPES[name], cache, say)


def gguf_path(name: str, cache: Path) -> Path:
    return cache / "sources" / f"synthetic-{name}" / f"{name}.gguf"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", default="", help="comma-separated names of SHAPES, or 'all'")
    ap.add_argument("--tiny", default="", help="comma-separated names of TINY, or 'all': GGUFs only, into --out")
    ap.add_argument("--out", type=Path, default=Path("/tmp/intab-synthetic"))
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    args = ap.parse_args(argv)
    for names, table in ((args.full, SHAPES), (args.tiny, TINY)):
        for name in (table if names == "all" else [n for n in names.split(",") if n]):
            if table is SHAPES:
                print(build_full(name, args.cache))
            else:
                args.out.mkdir(parents=True, exist_ok=True)
                print(write_gguf(TINY[name], args.out / f"{name}.gguf"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
