"""The generation loop's contract, on a tiny random model of the same architecture and the real
SmolLM2 tokenizer: fast, and every path (reuse, chunking, stops, abort, errors) exercised."""
from __future__ import annotations

import asyncio
import json
import shutil

import onnx
import pytest

from model_files import model_files, run_async
from intab.engine import Engine
from intab.errors import EngineBusy, InvalidParameter, PromptTooLong
from intab_host.ort_backend import OrtBackend
from models.gguf_source import LlamaConfig
from models.graph import build_graph, random_weights

TINY = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                   rope_theta=10000.0, max_position_embeddings=160, bos_token_id=1, eos_token_id=2,
                   tie_word_embeddings=True)
USER = [{"role": "user", "content": "Tell me a story about a fox."}]
GREEDY = {"temperature": 0, "max_tokens": 12, "ignore_eos": True}


@pytest.fixture(scope="module")
def tiny_dir(built_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    onnx.save(build_graph(TINY, random_weights(TINY, seed=1)), str(d / "model.onnx"))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(built_model_dir / name, d / name)
    manifest = json.loads((built_model_dir / "manifest.json").read_text())
    manifest.pop("weights", None)   # the tiny graph carries its weights inside
    (d / "manifest.json").write_text(json.dumps(manifest))
    (d / "config.json").write_text(json.dumps(TINY.to_hf()))
    return d


def make_engine(tiny_dir, **kw) -> Engine:
    return Engine.from_files(model_files(tiny_dir), OrtBackend(tiny_dir / "model.onnx", TINY.to_hf()), **kw)


def gen(engine, messages=USER, options=GREEDY, on_delta=None):
    return run_async(engine.generate(messages, options, on_delta))


def test_stream_deltas_add_up_to_the_text_and_the_tokens(tiny_dir):
    engine = make_engine(tiny_dir)
    deltas: list[str] = []
    r = gen(engine, on_delta=deltas.append)
    assert r.new_tokens == 12 and r.finish_reason == "length"
    assert "".join(deltas) == r.text == engine.tokenizer.decode(r.token_ids, skip_special_tokens=True)


def test_chunked_prefill_equals_one_shot(tiny_dir):
    one = gen(make_engine(tiny_dir, prefill_chunk=4096))
    chunked = gen(make_engine(tiny_dir, prefill_chunk=5))
    assert one.token_ids == chunked.token_ids


def test_follow_up_turn_reuses_the_kv_cache_and_equals_a_fresh_run(tiny_dir):
    engine = make_engine(tiny_dir)
    first = gen(engine)
    follow = USER + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "Shorter."}]
    second = gen(engine, follow)
    assert second.reused_tokens > first.prompt_tokens // 2
    fresh = gen(make_engine(tiny_dir), follow)
    assert second.token_ids == fresh.token_ids
    # an edited history (diverging early) truncates the cache and still equals a fresh run
    edited = [{"role": "user", "content": "Tell me a poem."}]
    assert gen(engine, edited).token_ids == gen(make_engine(tiny_dir), edited).token_ids


def test_stop_string_ends_the_answer_and_is_never_shown(tiny_dir):
    engine = make_engine(tiny_dir)
    full = gen(engine, options={**GREEDY, "max_tokens": 20})
    stop = full.text[5:8]
    assert len(stop) == 3
    deltas: list[str] = []
    r = gen(engine, options={**GREEDY, "max_tokens": 20, "stop": [stop]}, on_delta=deltas.append)
    assert r.finish_reason == "stop"
    assert r.text == full.text[:full.text.index(stop)]
    assert "".join(deltas) == r.text


def test_abort_mid_stream_then_the_engine_still_works(tiny_dir):
    engine = make_engine(tiny_dir)
    expected = gen(engine).token_ids
    run_async(engine.reset())
    r = gen(engine, options={**GREEDY, "max_tokens": 50}, on_delta=lambda _: engine.abort())
    assert r.finish_reason == "abort" and 0 < r.new_tokens < 50
    run_async(engine.reset())
    assert gen(engine).token_ids == expected


def test_prompt_longer_than_the_context_is_a_clear_error_and_loses_nothing(tiny_dir):
    engine = make_engine(tiny_dir)
    before = gen(engine).token_ids
    with pytest.raises(PromptTooLong) as err:
        gen(engine, [{"role": "user", "content": "fox " * 400}])
    assert "160" in str(err.value) and "Shorten" in str(err.value)
    run_async(engine.reset())
    assert gen(engine).token_ids == before


def test_generation_stops_at_the_context_limit(tiny_dir):
    engine = make_engine(tiny_dir)
    r = gen(engine, options={**GREEDY, "max_tokens": 1000})
    assert r.finish_reason == "length" and r.prompt_tokens + r.new_tokens == TINY.max_position_embeddings


def test_invalid_parameter_leaves_the_engine_usable(tiny_dir):
    engine = make_engine(tiny_dir)
    with pytest.raises(InvalidParameter):
        gen(engine, options={"top_p": 2})
    assert gen(engine).new_tokens == 12


def test_one_generation_at_a_time(tiny_dir):
    engine = make_engine(tiny_dir)

    async def both():
        first = asyncio.ensure_future(engine.generate(USER, GREEDY))
        await asyncio.sleep(0)
        with pytest.raises(EngineBusy):
            await engine.generate(USER, GREEDY)
        return await first

    assert run_async(both()).new_tokens == 12


def test_seeded_sampling_is_reproducible(tiny_dir):
    engine = make_engine(tiny_dir)
    opts = {"temperature": 1.0, "top_p": 0.9, "seed": 42, "max_tokens": 10, "ignore_eos": True}
    assert gen(engine, options=opts).token_ids == gen(engine, options=opts).token_ids
