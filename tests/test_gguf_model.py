"""py/intab/gguf_model.py, the model folder the tab makes from a user's GGUF (issue 13.5): the same
config, tokenizer and weights layout as the build (models/prepare.py) for the same file, and a
weights.bin assembled from its `from` pieces equal to the build's byte for byte."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from intab.arch.gguf_reader import Truncated
from intab.gguf_model import (HEAD_BYTES, NotGGUF, TruncatedFile, UnsupportedArchitecture, describe, describe_json,
                              unpermute_order)
from models.synthetic import TINY, build_model, gguf_path
from models.weights import unpermute_qk

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


def assemble(data: bytes, layout: dict) -> bytes:
    """weights.bin from the description, as web/gguf_model.mjs assembles it (the reference here)."""
    out = bytearray(layout["src_bytes"])
    for t in layout["tensors"]:
        at = t["src"]
        for p in t["from"]:
            raw = data[p["at"]:p["at"] + p["nbytes"]]
            if "order" in p:
                rb = p["row_bytes"]
                raw = b"".join(raw[r * rb:(r + 1) * rb] for r in p["order"])
            if t.get("convert"):
                src = np.frombuffer(raw, np.float16 if t["convert"] == "F16" else np.uint16)
                raw = (src.astype(np.float32) if t["convert"] == "F16"
                       else (src.astype(np.uint32) << 16).view(np.float32)).tobytes()
            if t.get("plus_one"):
                w = np.frombuffer(raw, np.float32)
                raw = (np.float32(1.0) + (w - np.float32(1.0))).astype(np.float32).tobytes()
            out[at:at + len(raw)] = raw
            at += len(raw)
    return bytes(out)


def check_against_build(gguf: Path, folder: Path) -> dict:
    data = gguf.read_bytes()
    d = describe(data[:HEAD_BYTES], len(data), name=gguf.name)
    for name in TEXT:
        want = json.loads((folder / name).read_text(encoding="utf-8"))
        if name == "generation_config.json":   # beyond the token ids, the recipe's own choices
            want = {k: v for k, v in want.items() if k.endswith("_token_id")}
        assert json.loads(d["files"][name]) == want, name
    built = json.loads((folder / "manifest.json").read_text())
    mine = d["manifest"]
    assert mine["architecture"] == built["architecture"] and mine["num_candidates"] == built["num_candidates"]
    keys = ("role", "kind", "rows", "cols", "transpose", "src")
    assert [{k: t[k] for k in keys} for t in mine["weights"]["tensors"]] == \
           [{k: t[k] for k in keys} for t in built["weights"]["tensors"]]
    assert mine["weights"]["src_bytes"] == built["weights"]["src_bytes"]
    assert assemble(data, mine["weights"]) == (folder / "weights.bin").read_bytes()
    return d


def test_smollm2_equals_the_build(built_model_dir):
    from models.recipes import DEFAULT
    from models.source import fetch_gguf

    d = check_against_build(fetch_gguf(DEFAULT, ROOT / ".cache"), Path(built_model_dir))
    kinds = {t["kind"] for t in d["manifest"]["weights"]["tensors"]}
    roles = {t["role"] for t in d["manifest"]["weights"]["tensors"]}
    assert kinds == {"Q8_0", "Q4_1", "F32"} and "l0_qkv" in roles and "l0_gate_up" in roles
    assert d["manifest"]["source"]["parameters"] > 130e6


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-llama3", "tiny-qwen2", "tiny-gemma3", "tiny-kinds"])
def test_synthetic_equals_the_build(name):
    """Biases (qwen2), 1 + w norms (gemma3), rope factors and an untied head (llama3), mixed kinds
    that do not stack (tiny-kinds)."""
    folder = build_model(TINY[name], ROOT / ".cache", say=lambda *_: None)
    check_against_build(gguf_path(name, ROOT / ".cache"), folder)


def test_unstacked_when_the_caller_asks():
    build_model(TINY["tiny-llama"], ROOT / ".cache", say=lambda *_: None)
    data = gguf_path("tiny-llama", ROOT / ".cache").read_bytes()
    d = describe(data, len(data), stack=())
    roles = {t["role"] for t in d["manifest"]["weights"]["tensors"]}
    assert {"l0_q", "l0_k", "l0_v", "l0_gate", "l0_up"} <= roles and "l0_qkv" not in roles


def test_unpermute_order_is_the_builds():
    rows = np.arange(24 * 3).reshape(24, 3)
    assert (rows[list(unpermute_order(24, 4))] == unpermute_qk(rows, 4)).all()


def test_header_grows_then_errors():
    build_model(TINY["tiny-llama"], ROOT / ".cache", say=lambda *_: None)
    data = gguf_path("tiny-llama", ROOT / ".cache").read_bytes()
    with pytest.raises(Truncated) as e:
        describe(data[:1000], len(data))
    assert e.value.needed > 1000
    answer = json.loads(describe_json(data[:1000], len(data), "t.gguf", ["qkv"], None))
    assert answer["ok"] is False and answer["needed"] > 1000
    with pytest.raises(TruncatedFile, match="ends inside its header"):
        describe(data[:1000], 1000)
    with pytest.raises(TruncatedFile, match="tensor .* ends at byte"):
        describe(data[:len(data) - 100], len(data) - 100)
    with pytest.raises(NotGGUF):
        describe(b"PK\x03\x04" + bytes(60), 64)
    err = json.loads(describe_json(b"\x00\x01", 2, "x.bin", [], None))["error"]
    assert err["name"] == "NotGGUF" and err["hint"] and err["param"] == "model" and "x.bin" in err["message"]


def test_unsupported_architecture_names_it(tmp_path):
    from model_files import one_tensor_gguf

    data = one_tensor_gguf(tmp_path / "m.gguf", "mamba", np.zeros((4, 32), np.float32)).read_bytes()
    with pytest.raises(UnsupportedArchitecture) as e:
        describe(data, len(data), architectures=["llama"])
    assert e.value.message.endswith("is a 'mamba' model; the tab runs llama") and "llama" in e.value.hint
    assert struct.unpack("<I", data[4:8])[0] == 3


def kernel_verdicts(tmp_path: Path, cases: list[tuple[dict, dict]]) -> list[dict]:
    """web/gguf_model.mjs checkKernel under Node for each (manifest, config): {context} or {error}."""
    from model_files import node_json

    return node_json("gguf_model.mjs", "checkKernel", "data.map(([m, c]) => {"
                     " try { return { context: checkKernel(m, c, 'm.gguf') }; }"
                     " catch (e) { return { error: e.name, message: e.message, hint: e.hint, param: e.param }; } })", cases)


def test_the_kernel_table_decides(tmp_path, built_model_dir):
    """What intab's kernel runs (web/capabilities.mjs KERNEL) decides, with a typed error naming the
    tensor and kind, or the sizes against the kernel's memory; the context shrinks to what fits."""
    from models.recipes import DEFAULT
    from models.source import fetch_gguf

    def folder(path: Path):
        data = path.read_bytes()
        d = describe(data[:HEAD_BYTES], len(data), name=path.name)
        return d["manifest"], json.loads(d["files"]["config.json"])

    smol = folder(fetch_gguf(DEFAULT, ROOT / ".cache"))
    build_model(TINY["tiny-kinds"], ROOT / ".cache", say=lambda *_: None)
    kinds = folder(gguf_path("tiny-kinds", ROOT / ".cache"))
    # A kind outside KERNEL.kinds (describe() refuses kinds intab does not know before this, so the
    # table's rule is reached by a description edited to hold one).
    odd = json.loads(json.dumps(smol))
    odd[0]["weights"]["tensors"][3]["kind"] = "IQ4_XS"
    big = json.loads(json.dumps(smol))
    big[0]["weights"]["src_bytes"] = 4 << 30                    # all of wasm32's memory
    long = json.loads(json.dumps(smol))
    long[0]["weights"]["src_bytes"] = 1500 << 20
    long[1]["max_position_embeddings"] = 131072
    ok, every_kind, odd, too_big, capped = kernel_verdicts(tmp_path, [smol, kinds, odd, big, long])
    assert ok == {"context": 8192}
    assert every_kind == {"context": kinds[1]["max_position_embeddings"]}, every_kind   # all 11 kinds run
    assert odd["error"] == "UnsupportedBlockKind" and odd["param"] == "model"
    import re
    m = re.fullmatch(r"tensor (\S+) of m\.gguf is IQ4_XS, a block kind intab's kernel does not compute", odd["message"])
    assert m and m[1].endswith(".weight") and "Q4_K" in odd["hint"] and "IQ4_XS" not in odd["hint"], odd
    assert too_big["error"] == "ModelTooLarge" and re.search(r"4\.\d\d GiB of weights", too_big["message"]), too_big
    assert "kernel memory of 4.00 GiB" in too_big["message"] and "4 GiB" in too_big["hint"]
    # 1.5 GiB of weights leave ~2.5 GiB: SmolLM2's 45 KiB of KV cache a token, ~58,000 tokens, not 131,072
    assert 49152 < capped["context"] < 65536 and capped["context"] % 256 == 0, capped
