"""intab's public Python API under CPython (issue 12), on the real SmolLM2 model (onnxruntime), and
the wheels build.py writes: references are HF `tokenizers`/transformers, the golden greedy tokens
(transformers on the same GGUF), the engine's own CPython path and pip itself."""
from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import zipfile

import pytest

import intab
from intab import Candidates
from model_files import run_async

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(built_model_dir):
    return run_async(intab.load(str(built_model_dir)))


def run(coro):
    return run_async(coro)


# ---------------------------------------------------------------- text side, no backend
def test_tokenizing_and_templating_equal_hf_and_need_no_backend(built_model_dir):
    from tokenizers import Tokenizer as HF
    from transformers import AutoTokenizer

    tm = run(intab.load_tokenizer(str(built_model_dir)))
    assert not hasattr(tm, "chat")   # a TextModel: no runtime behind it
    hf = HF.from_file(str(built_model_dir / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(built_model_dir))
    text = "Hello, world! <|im_start|> 12345 naïve"
    assert tm.tokenize(text) == hf.encode(text).ids
    ids = hf.encode("<|im_start|>user\nHi<|im_end|>").ids
    assert tm.detokenize(ids) == hf.decode(ids)                      # tokenizers skips specials by default
    assert tm.detokenize(ids, skip_special_tokens=False) == hf.decode(ids, skip_special_tokens=False)
    msgs = [{"role": "system", "content": "Be brief."}] + USER
    assert tm.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        auto.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert tm.apply_chat_template(msgs) == dict(auto.apply_chat_template(msgs))   # transformers 5: a dict of ids
    assert tm.apply_chat_template(msgs, return_dict=False) == auto.apply_chat_template(msgs, return_dict=False)
    assert tm.count_tokens(msgs) == len(auto.apply_chat_template(msgs, add_generation_prompt=True, return_dict=False))


# ---------------------------------------------------------------- generation
def test_chat_greedy_equals_the_golden_tokens(engine, golden):
    case = golden["cases"][0]
    r = run(engine.chat(case["messages"], temperature=0, max_tokens=len(case["output_ids"])))
    assert r.token_ids == case["output_ids"]
    assert r.text == case["output_text"]
    assert r.usage.prompt_tokens == len(case["prompt_ids"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.finish_reason in ("stop", "length")


def test_stream_deltas_add_up_and_cancelling_the_task_aborts(engine):
    async def go():
        full = await engine.chat(USER, temperature=0, max_tokens=24)
        stream = engine.stream(USER, temperature=0, max_tokens=24)
        parts = [d async for d in stream]
        assert "".join(parts) == full.text == stream.result.text

        got: list[str] = []

        async def consume():
            async for d in engine.stream("Tell me a long story about a fox.", temperature=0, max_tokens=400,
                                         ignore_eos=True):
                got.append(d)

        task = asyncio.ensure_future(consume())
        while len(got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = asyncio.get_running_loop().time()
        again = await engine.chat(USER, temperature=0, max_tokens=24)     # the engine is free at once
        assert again.token_ids == full.token_ids
        assert len(got) < 50 and asyncio.get_running_loop().time() - t0 < 60
    run(go())


def test_concurrent_requests_queue_and_all_answer_in_order(engine):
    async def go():
        order: list[int] = []

        async def one(i):
            r = await engine.chat([{"role": "user", "content": f"Count to {i}."}], temperature=0, max_tokens=6)
            order.append(i)
            return r
        results = await asyncio.gather(*(one(i) for i in range(3)))
        assert order == [0, 1, 2] and all(r.usage.completion_tokens >= 1 for r in results)
    run(go())


def test_session_keeps_its_history_and_fork_goes_on_separately(engine):
    async def go():
        s = engine.session(system="You answer in one word.")
        r = await s.send("Name a color.", temperature=0, max_tokens=8)
        assert [m["role"] for m in s.messages] == ["system", "user", "assistant"]
        assert s.messages[-1]["content"] == r.text
        f = s.fork()
        await f.send("Another one.", temperature=0, max_tokens=8)
        assert len(f.messages) == 5 and len(s.messages) == 3
        direct = await engine.chat(f.messages[:4], temperature=0, max_tokens=8)
        assert direct.text == f.messages[4]["content"]
    run(go())


def test_openai_shapes(engine):
    async def go():
        c = await engine.chat.completions.create(model="anything", messages=USER, max_tokens=8, temperature=0,
                                                 logprobs=True, top_logprobs=3)
        assert c.object == "chat.completion" and c.choices[0].message.role == "assistant"
        assert c.choices[0].finish_reason in ("stop", "length")
        lp = c.choices[0].logprobs.content
        assert len(lp) == c.usage.completion_tokens and len(lp[0].top_logprobs) == 3
        assert lp[0].top_logprobs[0].logprob >= lp[0].top_logprobs[1].logprob
        d = json.loads(c.model_dump_json())
        assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]
        chunks = [ch async for ch in await engine.chat.completions.create(
            messages=USER, max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True})]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == c.choices[0].message.content
        assert chunks[-2].choices[0].finish_reason == c.choices[0].finish_reason
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == c.usage.completion_tokens
        done = await engine.completions.create(prompt="The capital of France is", max_tokens=4, temperature=0)
        assert done.object == "text_completion" and done.choices[0].text
    run(go())


def test_logprobs_are_exact_against_the_full_distribution(engine, built_model_dir):
    """logprob = logit - logsumexp over the whole vocabulary: equal to a softmax of the full
    logits computed here with onnxruntime at the same position."""
    import numpy as np
    from intab_host.ort_backend import OrtBackend

    r = run(engine.chat(USER, temperature=0, max_tokens=3, logprobs=True, top_logprobs=5))
    prompt = engine.apply_chat_template(USER, add_generation_prompt=True, return_dict=False)
    full = OrtBackend(built_model_dir / "model.onnx", json.loads((built_model_dir / "config.json").read_text()))
    c = run(full.forward(prompt, 0, engine.vocab_size))
    logits = np.array(c.logits, dtype=np.float64)
    logp = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    by_id = dict(zip(c.ids, logp))
    first = r.logprobs[0]
    assert first.id == c.ids[0]
    # the head sums 49,152 exponentials in float32: ~1e-4 from the float64 sum here
    assert abs(first.logprob - by_id[first.id]) < 5e-4
    for tid, _, lp in first.top_logprobs:
        assert abs(lp - by_id[tid]) < 5e-4
    conf = r.confidence
    assert conf["tokens"] == 3 and 0 <= conf["min_margin"] <= conf["mean_margin"]
    top2 = np.sort(logp)[-2:]
    assert abs(r.token_confidence[0]["margin"] - (top2[1] - top2[0])) < 5e-4    # log p1 - log p2, nats
    p = np.exp(logp)
    exact_h = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    assert r.token_confidence[0]["entropy"] <= exact_h + 1e-3    # a lower bound from the top-K


# ---------------------------------------------------------------- user-written decoding
def test_processors_and_sampler(engine):
    banned = set(engine.tokenize(" Paris")) | set(engine.tokenize("Paris"))

    def ban(history, c):
        keep = [(i, l) for i, l in zip(c.ids, c.logits) if i not in banned]
        return Candidates(tuple(i for i, _ in keep), tuple(l for _, l in keep), c.logsumexp)

    r = run(engine.chat(USER, temperature=0, max_tokens=16, logits_processors=[ban]))
    assert not banned & set(r.token_ids) and "Paris" not in r.text

    seen = []

    def second_best(c):
        seen.append(len(c))
        return c.ids[1]
    r2 = run(engine.chat(USER, max_tokens=4, sampler=second_best, ignore_eos=True))
    assert len(r2.token_ids) == 4 and seen[0] > 1    # the sampler sees the top-K, not one token

    def stop_when_unsure(history, c):   # docs/python.md: end the answer when the margin drops
        p = [math.exp(l - c.logsumexp) for l in c.logits[:2]]
        if p[0] - p[1] < 0.5:
            raise intab.StopGeneration
        return c
    r3 = run(engine.chat(USER, temperature=0, max_tokens=40, logits_processors=[stop_when_unsure]))
    assert r3.finish_reason == "stop" and r3.stop_reason == "processor"


def test_a_processor_that_raises_ends_the_request_with_its_traceback_and_the_engine_goes_on(engine):
    def broken(history, c):
        raise ZeroDivisionError("boom")
    with pytest.raises(intab.errors.ProcessorError) as e:
        run(engine.chat(USER, max_tokens=4, logits_processors=[broken]))
    assert "broken" in e.value.message and "ZeroDivisionError: boom" in e.value.traceback
    with pytest.raises(intab.ProcessorError, match="not a non-empty Candidates"):
        run(engine.chat(USER, max_tokens=4, logits_processors=[lambda h, c: list(c.ids)]))
    assert run(engine.chat(USER, temperature=0, max_tokens=8)).text.startswith("The capital of France")


# ---------------------------------------------------------------- errors, blocking calls
@pytest.mark.parametrize("options, param", [
    ({"temperature": -1}, None), ({"top_p": 2}, None), ({"bogus": 1}, None), ({"top_logprobs": 21, "logprobs": True},
                                                                              "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"logits_processors": [1]}, "logits_processors"), ({"bogus": 1}, "bogus"),
    ({"sampler": "greedy"}, "sampler"), ({"logprobs": "yes"}, "logprobs"),
])
def test_bad_options_are_typed_errors_raised_before_anything_runs(engine, options, param):
    with pytest.raises(intab.InvalidParameter) as e:
        engine.chat(USER, **options)
    assert e.value.hint
    if param:
        assert e.value.param == param


def test_openai_fields_intab_cannot_honour_are_refused_by_name(engine):
    for kw in ({"n": 2}, {"tools": [{}]}, {"parallel_tool_calls": True}, {"logit_bias": {"1": 2}},
               {"presence_penalty": 1}):
        with pytest.raises(intab.InvalidParameter, match=next(iter(kw))):
            run(engine.chat.completions.create(messages=USER, **kw))


def test_sync_wrappers_block_only_where_they_can(engine, built_model_dir):
    r = engine.sync.chat(USER, temperature=0, max_tokens=6)   # no loop runs in this thread
    assert r.usage.completion_tokens == 6 or r.finish_reason == "stop"
    assert "".join(engine.sync.stream(USER, temperature=0, max_tokens=6)) == r.text

    async def inside_a_loop():
        with pytest.raises(intab.SyncUnavailable) as e:
            engine.sync.chat(USER)
        assert "await" in e.value.hint
        assert not intab.can_block()
    run(inside_a_loop())


# ---------------------------------------------------------------- the wheels
def test_the_wheels_install_with_pip_and_the_api_runs_from_them(built_static, built_model_dir, tmp_path):
    """pip installs dist/'s intab and intab-host from the files build.py wrote (no index), and a
    Python that does not see the repository runs the API from them."""
    import build

    py_dir = built_static / "py"
    tab_wheel = next(py_dir.glob("intab-*-py3-none-any.whl"))
    with zipfile.ZipFile(tab_wheel) as z:
        names = z.namelist()
    assert not [n for n in names if n.startswith("intab_host")], "CPython-only code must not ship to the tab"
    assert "intab/api.py" in names and any(n.endswith(".dist-info/RECORD") for n in names)
    assert (py_dir / "simple" / "intab" / "index.html").exists()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target),
                    str(build.DIST / tab_wheel.name), *map(str, build.DIST.glob("intab_host-*.whl"))], check=True)
    code = (f"import sys; sys.path[:0] = [{str(target)!r}]; import asyncio, intab; "
            f"assert intab.__file__.startswith({str(target)!r}); "
            f"e = asyncio.run(intab.load({str(built_model_dir)!r})); "
            f"print(asyncio.run(e.chat('What is the capital of France?', temperature=0, max_tokens=8)).text)")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
