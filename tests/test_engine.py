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
from intab.errors import InvalidParameter, PromptTooLong
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
    deltas = []
    r = gen(engine, on_delta=deltas.append)
    assert r.new_tokens == 12 and r.finish_reason == "length" and r.stop_reason == "max_tokens"
    assert "".join(d.text for d in deltas) == r.text == engine.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    assert [t for d in deltas for t in d.token_ids] == r.token_ids


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
    deltas = []
    r = gen(engine, options={**GREEDY, "max_tokens": 20, "stop": [stop]}, on_delta=deltas.append)
    assert r.finish_reason == "stop" and r.stop_reason == "stop_string"
    assert r.text == full.text[:full.text.index(stop)]
    assert "".join(d.text for d in deltas) == r.text


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
    assert "160" in err.value.message and err.value.param == "messages"
    assert "new chat" in err.value.hint and "drop_oldest" in err.value.hint   # what to do, as its own field
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


def test_concurrent_generations_queue_and_both_answer_in_order(tiny_dir):
    engine = make_engine(tiny_dir)
    alone = gen(make_engine(tiny_dir)).token_ids
    other = [{"role": "user", "content": "Name three colours."}]
    other_alone = gen(make_engine(tiny_dir), other).token_ids
    order: list[str] = []

    async def both():
        async def one(name, msgs):
            r = await engine.generate(msgs, GREEDY)
            order.append(name)
            return r
        return await asyncio.gather(one("first", USER), one("second", other))

    a, b = run_async(both())
    assert order == ["first", "second"]
    assert (a.token_ids, b.token_ids) == (alone, other_alone)


def test_seeded_sampling_is_reproducible(tiny_dir):
    engine = make_engine(tiny_dir)
    opts = {"temperature": 1.0, "top_p": 0.9, "seed": 42, "max_tokens": 10, "ignore_eos": True}
    assert gen(engine, options=opts).token_ids == gen(engine, options=opts).token_ids


def test_drop_oldest_leaves_out_the_oldest_turns_and_answers(tiny_dir):
    engine = make_engine(tiny_dir)
    long = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        long += [{"role": "user", "content": f"fact {i} " * 8}, {"role": "assistant", "content": "ok " * 6}]
    long.append({"role": "user", "content": "Tell me a story about a fox."})
    with pytest.raises(PromptTooLong):
        gen(engine, long, {**GREEDY, "max_tokens": 20})
    r = gen(engine, long, {**GREEDY, "max_tokens": 20, "context_overflow": "drop_oldest"})
    assert r.dropped_messages >= 2 and r.new_tokens == 20
    kept = long[:1] + long[1 + r.dropped_messages:]
    assert kept[1]["role"] == "user" and r.prompt_tokens == len(engine.prompt_ids(kept))
    assert r.prompt_tokens + min(20, TINY.max_position_embeddings // 4) <= TINY.max_position_embeddings
    with pytest.raises(InvalidParameter) as err:
        gen(engine, long, {"context_overflow": "slide"})
    assert err.value.param == "context_overflow"


def old_fit(engine, messages, prompt, max_tokens):
    """The reference: drop_oldest's cut as it was first written (one turn at a time, the whole
    conversation re-tokenized after each)."""
    limit = engine.info.max_context
    room = min(max_tokens, limit // 4)
    messages = list(messages)
    head = 1 if messages and messages[0].get("role") == "system" else 0
    dropped = 0
    while len(prompt) + room > limit and len(messages) - head > 1:
        del messages[head]
        dropped += 1
        while len(messages) - head > 1 and messages[head].get("role") not in ("user", None):
            del messages[head]
            dropped += 1
        prompt = engine.prompt_ids(messages)
    return prompt, dropped


def test_drop_oldest_cuts_where_the_one_by_one_loop_cut_with_log_n_tokenizations(tiny_dir):
    """The binary search on the cut (Engine._first_cut) against the old loop: random
    conversations (with or without a system message, runs of answers and tool results, messages
    of all lengths), every room for the answer; the same messages left out, the same prompt."""
    import random

    from intab.config import GenerationConfig

    engine = make_engine(tiny_dir)
    rng = random.Random(14)
    calls = []
    encode = engine.prompt_ids
    engine.prompt_ids = lambda m, **kw: calls.append(1) or encode(m, **kw)   # counts tokenizations
    cut = 0
    for case in range(60):
        msgs = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.5 else []
        for _ in range(rng.randrange(1, 40)):
            role = rng.choice(["user", "user", "assistant", "assistant", "tool"])
            msgs.append({"role": role, "content": " ".join(rng.choice(["fox", "a", "b12", "é", "river"])
                                                           for _ in range(rng.randrange(0, 30)))})
        max_tokens = rng.choice([1, 8, 20, 40])
        try:
            prompt = engine.prompt_ids(msgs)
        except Exception:    # a template that refuses this order of roles: not this test's subject
            continue
        want, want_dropped = old_fit(engine, msgs, prompt, max_tokens)
        calls.clear()
        kept = list(msgs)
        got, got_dropped = engine._fit(kept, prompt, GenerationConfig.from_options({"max_tokens": max_tokens}), {})
        assert (got_dropped, got) == (want_dropped, want), case
        cut += want_dropped > 2
        head = 1 if msgs[0]["role"] == "system" else 0
        assert kept == msgs[:head] + msgs[head + got_dropped:]
        turns = len(engine._cuts(msgs))
        assert len(calls) <= 2 + turns.bit_length(), (len(calls), turns)
    assert cut >= 20, cut     # most conversations overflow the tiny model's 160 tokens


def test_logprobs_are_the_candidates_exact_log_probabilities(tiny_dir):
    engine = make_engine(tiny_dir)
    r = gen(engine, options={**GREEDY, "logprobs": True, "top_logprobs": 5})
    assert len(r.logprobs) == len(r.token_ids) == len(r.token_confidence)
    for tid, entry, conf in zip(r.token_ids, r.logprobs, r.token_confidence):
        tops = entry["top_logprobs"]
        assert len(tops) == 5 and entry["id"] == tid == tops[0]["id"]   # greedy: the first candidate
        assert entry["logprob"] == tops[0]["logprob"] == conf["logprob"] <= 0
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
        assert conf["margin"] == pytest.approx(tops[0]["logprob"] - tops[1]["logprob"])
        assert bytes(entry["bytes"]) == engine.tokenizer.token_bytes(tid)
    c = r.confidence
    assert c["tokens"] == 12 and c["min_logprob"] <= c["mean_logprob"] <= 0 and c["max_entropy"] >= c["mean_entropy"] >= 0
    with pytest.raises(InvalidParameter) as err:
        gen(engine, options={"top_logprobs": 3})
    assert err.value.param == "top_logprobs"


def test_a_special_token_mid_answer_ends_it(tiny_dir):
    """The model writing a control token (<|im_start|>, a new turn of its own) ends the answer:
    the token is reported, not shown, and nothing after it is generated."""
    engine = make_engine(tiny_dir)
    im_start = engine.tokenizer.token_to_id("<|im_start|>")

    def force(history, c):   # from the third token on, make <|im_start|> the model's choice
        if len(history) - r0 >= 2:
            return type(c)((im_start,) + c.ids[1:], c.logits, c.logsumexp)
        return c

    r0 = len(engine.prompt_ids(USER))
    r = run_async(engine.generate(USER, {"temperature": 0, "max_tokens": 12}, logits_processors=[force]))
    assert r.finish_reason == "stop" and r.stop_reason == "special_token" and r.stop_token == "<|im_start|>"
    assert r.token_ids[-1] == im_start and len(r.token_ids) == 3 and "<|im_start|>" not in r.text


def test_user_processors_and_samplers_run_per_token_and_their_errors_leave_the_engine_usable(tiny_dir):
    from intab.errors import ProcessorError, StopGeneration

    engine = make_engine(tiny_dir)
    expected = gen(engine).token_ids
    seen = []

    def ban_first(history, c):
        seen.append(len(c))
        return type(c)(c.ids[1:], c.logits[1:], c.logsumexp)

    r = run_async(engine.generate(USER, GREEDY, logits_processors=[ban_first]))
    assert len(seen) == 12 and min(seen) >= 64 and r.token_ids[0] != expected[0]

    def broken(history, c):
        raise KeyError("oops")

    with pytest.raises(ProcessorError) as err:
        run_async(engine.generate(USER, GREEDY, logits_processors=[broken]))
    assert "broken" in err.value.message and "KeyError" in err.value.traceback
    with pytest.raises(ProcessorError):
        run_async(engine.generate(USER, GREEDY, sampler=lambda c: "not a token"))

    def stop_after_three(c):
        if len(seen) >= 15:
            raise StopGeneration
        seen.append(0)
        return c.ids[0]

    r = run_async(engine.generate(USER, GREEDY, sampler=stop_after_three))
    assert r.finish_reason == "stop" and r.stop_reason == "processor" and len(r.token_ids) == 3
    assert gen(engine).token_ids == expected


def test_switching_conversations_restores_a_snapshot_and_equals_a_fresh_run(tiny_dir):
    engine = make_engine(tiny_dir)
    a = [{"role": "user", "content": "Tell me a story about a fox " + "and a hen " * 6}]
    b = [{"role": "user", "content": "Name three colours " + "of the sky " * 6}]
    ra = gen(engine, a)
    rb = gen(engine, b)
    a2 = a + [{"role": "assistant", "content": ra.text}, {"role": "user", "content": "More."}]
    back = gen(engine, a2)
    assert back.restored_tokens > ra.prompt_tokens // 2 and back.reused_tokens == back.restored_tokens
    assert engine.kv.snapshots >= 1
    assert back.token_ids == gen(make_engine(tiny_dir), a2).token_ids
    b2 = b + [{"role": "assistant", "content": rb.text}, {"role": "user", "content": "Again."}]
    assert gen(engine, b2).token_ids == gen(make_engine(tiny_dir), b2).token_ids
    run_async(engine.reset())
    assert engine.kv.snapshots == 0


def test_text_completion_continues_a_plain_prompt(tiny_dir):
    engine = make_engine(tiny_dir)
    r = run_async(engine.complete("Once upon a time", GREEDY))
    assert r.prompt_tokens == len(engine.tokenizer.encode("Once upon a time")) and r.new_tokens == 12


def test_a_message_far_past_the_context_is_refused_without_tokenizing_it(tiny_dir):
    """1 MB of text: PromptTooLong at once (tokenizing it would take ~10 s here, minutes in
    Pyodide); under drop_oldest the older turns go first, and a last message that alone is too
    long is still refused (issue 14, found by the fuzzer)."""
    import time

    engine = make_engine(tiny_dir)
    big = [{"role": "user", "content": "x" * (1 << 20)}]
    for overflow in ("error", "drop_oldest"):
        t0 = time.perf_counter()
        with pytest.raises(PromptTooLong) as err:
            engine.prepare_chat(big, {"context_overflow": overflow, "max_tokens": 4})
        assert time.perf_counter() - t0 < 1.0 and err.value.param == "messages"
    with pytest.raises(PromptTooLong):
        engine.prepare_completion("x" * (1 << 20), {"max_tokens": 4})
    r = engine.prepare_chat([*big, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "Hi"}],
                            {"context_overflow": "drop_oldest", "max_tokens": 4})
    assert r.dropped == 2 and 0 < len(r.prompt) < 64
