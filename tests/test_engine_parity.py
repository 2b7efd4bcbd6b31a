"""The engine under CPython, with onnxruntime running the browser's graph, reproduces the
reference's greedy tokens (tests/golden, written by models/reference/make_golden.py with
transformers on the same GGUF)."""
from __future__ import annotations

import json

import pytest

from model_files import model_files, run_async
from intab.engine import Engine
from intab_host.ort_backend import OrtBackend


@pytest.fixture(scope="module")
def engine(built_model_dir):
    cfg = json.loads((built_model_dir / "config.json").read_text())
    return Engine.from_files(model_files(built_model_dir), OrtBackend(built_model_dir / "model.onnx", cfg))


def test_prompt_ids_match_reference(engine, golden):
    for case in golden["cases"]:
        assert engine.prompt_ids(case["messages"]) == case["prompt_ids"], case["name"]


def test_greedy_tokens_match_reference(engine, golden):
    mismatches = []
    for case in golden["cases"]:
        run_async(engine.reset())
        result = run_async(engine.generate(case["messages"], {"temperature": 0, "max_tokens": golden["max_new_tokens"]}))
        if result.token_ids != case["output_ids"]:
            mismatches.append(case["name"])
            continue
        assert result.text == case["output_text"], case["name"]
        assert result.finish_reason == ("stop" if case["output_ids"][-1] == golden["eos_token_id"] else "length")
    assert not mismatches, f"greedy tokens differ from the reference for {mismatches}"


def test_capital_of_france_names_paris(engine):
    run_async(engine.reset())
    result = run_async(engine.generate([{"role": "user", "content": "What is the capital of France?"}], {}))
    assert "Paris" in result.text
