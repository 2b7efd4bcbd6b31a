# intab's Python API (py/intab/api.py, docs/python.md) under hypothesis, in Pyodide with the real
# model (issue 14, item 4). Run by page.mjs, which sets SITE, EXAMPLES and SEED; the value of the
# last line is the report (JSON), read by tests/browser/test_python_props.py and build.py soak.
#
# The property: a random call (chat, the OpenAI-shaped create, a stream left after two deltas,
# complete, count_tokens, apply_chat_template) with random messages, options and schemas either
# answers (text, tokens, usage that add up) or raises a typed IntabError subclass with a message,
# a hint and, for a bad option, the option's name; and the engine stays usable: a greedy probe
# gives the same tokens as before, every PROBE_EVERY calls and at the end. Anything else is a
# finding: hypothesis shrinks it and the report carries the smallest input and its traceback.
import json
import time
import traceback
from collections import Counter

import micropip

await micropip.install("intab", index_urls=[SITE + "py/simple/{package_name}/"])  # noqa: F704 - Pyodide top-level await
import intab  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

engine = await intab.load(site=SITE, backend="wasm")  # noqa: F704
sync = engine.sync
PROBE = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "max_tokens": 4}
baseline = (await engine.chat(PROBE, **GREEDY)).token_ids  # noqa: F704
PROBE_EVERY = 10

# ---------------------------------------------------------------- strategies
# Texts: short ones of every kind (hypothesis leaves out surrogates, so a lone one is added), and
# a 1 MB one (refused before tokenizing). Nothing between: tokenizing and prefilling thousands of
# tokens is seconds each here, which the JS fuzzer's long run covers.
texts = st.one_of(st.text(max_size=60), st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "\u200d\U0001F600", "<|im_end|>",
                                                         "<tool_call>", "{{ 7*7 }}", "x" * (1 << 20)]))
roles = st.one_of(st.sampled_from(["user", "assistant", "system", "tool"]), st.text(max_size=6))
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
content = st.one_of(texts, texts, texts, junk, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2))
message = st.one_of(st.fixed_dictionaries({"role": roles, "content": content}),
                    st.dictionaries(st.sampled_from(["role", "content", "name", "tool_calls", "tool_call_id"]), content, max_size=3),
                    junk)
messages = st.one_of(st.lists(message, min_size=1, max_size=5),
                     st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": texts}), min_size=1, max_size=3),
                     st.just([]), junk, texts)

# JSON schemas: small valid ones of every type, nested a little, and broken ones.
leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])}),
    st.fixed_dictionaries({"enum": st.lists(st.one_of(st.text(max_size=5), st.integers(-9, 9)), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"type": st.just("string"), "maxLength": st.integers(0, 5)}),
    st.fixed_dictionaries({"type": st.just("integer"), "minimum": st.integers(-5, 5), "maximum": st.integers(-5, 9)}),
    st.fixed_dictionaries({"type": st.just("string"), "pattern": st.sampled_from(["^[a-c]{1,3}$", "^(x|y)+$", "(", "^\\d$"])}),
)
schemas = st.recursive(leaf, lambda inner: st.one_of(
    st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3),
                           "additionalProperties": st.just(False)}),
    st.fixed_dictionaries({"type": st.just("array"), "items": inner, "maxItems": st.integers(0, 3)}),
    st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=2)}),
), max_leaves=4)
response_formats = st.one_of(
    st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries({"name": st.just("x"), "schema": schemas})}),
    st.sampled_from([{"type": "json_object"}, {"type": "text"}, {"type": "json_schema"}, {"type": "yaml"}, "json"]),
    st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries({"schema": junk})}),
)
tool = st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": st.sampled_from(["get_weather", "f", "", "bad name"]), "parameters": st.one_of(schemas, junk)})})

# Options: each one valid-and-cheap most of the time, junk sometimes; max_tokens always small
# when valid (the answers are 1-4 tokens: the budget goes to breadth).
small = st.integers(1, 4)
option_values = {
    "max_tokens": st.one_of(small, small, small, st.sampled_from([0, -1, 2.5, "3", "x", float("inf"), float("nan"), True, [], None])),
    "temperature": st.one_of(st.sampled_from([0, 0.7, 1.0, 1e-30]), st.floats(allow_nan=True), junk, texts),
    "top_k": st.one_of(st.integers(-2, 60), junk),
    "top_p": st.one_of(st.floats(-0.5, 1.5), junk),
    "min_p": st.one_of(st.floats(-0.5, 1.5), junk),
    "repetition_penalty": st.one_of(st.floats(0, 12), junk),
    "seed": st.one_of(st.integers(-(2 ** 70), 2 ** 70), junk),
    "stop": st.one_of(texts, st.lists(texts, max_size=3), junk),
    "logprobs": st.one_of(st.booleans(), junk),
    "top_logprobs": st.one_of(st.integers(-2, 25), junk),
    "context_overflow": st.one_of(st.sampled_from(["error", "drop_oldest", "slide"]), junk),
    "ignore_eos": st.one_of(st.booleans(), junk),
    "response_format": st.one_of(response_formats, junk),
    "regex": st.one_of(st.sampled_from(["[a-z]{1,4}", "(yes|no)", "a*", "(", "\\d+", ""]), texts),
    "choices": st.one_of(st.lists(texts, max_size=3), junk),
    "tools": st.one_of(st.lists(tool, max_size=2), junk),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required", {"type": "function", "function": {"name": "f"}}]), junk),
    "no_such_option": junk,
}
valid_values = {
    "temperature": st.sampled_from([0, 0.5, 1.0]), "top_k": st.integers(0, 50), "top_p": st.floats(0.05, 1),
    "min_p": st.floats(0, 0.5), "repetition_penalty": st.floats(0.5, 2), "seed": st.integers(0, 2 ** 31),
    "stop": st.lists(st.text(min_size=1, max_size=3), max_size=2), "logprobs": st.just(True),
    "top_logprobs": st.integers(0, 20), "context_overflow": st.sampled_from(["error", "drop_oldest"]),
    "response_format": response_formats, "regex": st.sampled_from(["[a-z]{1,4}", "(yes|no)", "a*", "\\d+"]),
    "choices": st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3, unique=True),
}
valid_options = st.fixed_dictionaries({"max_tokens": small}, optional=valid_values)
options = st.fixed_dictionaries({"max_tokens": option_values["max_tokens"]},
                                optional={k: v for k, v in option_values.items() if k != "max_tokens"})


@st.composite
def conversations(draw):
    """A conversation the template takes: an optional system message, then user and assistant
    turns in order, ending with the user's."""
    turns = draw(st.integers(0, 2))
    msgs = [{"role": "system", "content": draw(texts)}] if draw(st.booleans()) else []
    for _ in range(turns):
        msgs += [{"role": "user", "content": draw(texts)}, {"role": "assistant", "content": draw(texts)}]
    return msgs + [{"role": "user", "content": draw(texts)}]


# Half the cases are well formed (mostly answered), half are anything (mostly refused).
cases = st.one_of(st.tuples(conversations(), valid_options), st.tuples(messages, options))
calls = st.sampled_from(["chat", "chat", "create", "stream", "complete", "count_tokens", "template"])

# ---------------------------------------------------------------- the property
outcomes: Counter = Counter()
runs = [0]


class Finding(AssertionError):
    pass


def check_result(r) -> None:
    if not (isinstance(r.text, str) and isinstance(r.token_ids, list) and r.finish_reason in ("stop", "length", "tool_calls")):
        raise Finding(f"a malformed result: {r!r}")
    if r.usage.completion_tokens != len(r.token_ids) or r.usage.total_tokens != r.usage.prompt_tokens + r.usage.completion_tokens:
        raise Finding(f"usage does not add up: {r.usage!r} for {len(r.token_ids)} tokens")


def call(kind: str, msgs, opts: dict) -> str:
    if kind == "chat":
        check_result(sync.chat(msgs, **opts))
    elif kind == "create":
        c = sync.create(messages=msgs, **opts)
        if not (c.choices and isinstance(c.choices[0].message.content, (str, type(None)))):
            raise Finding(f"a malformed completion: {c!r}")
    elif kind == "stream":
        it = sync.stream(msgs, **opts)
        try:
            for i, delta in enumerate(it):
                if not isinstance(delta, str):
                    raise Finding(f"a delta that is not text: {delta!r}")
                if i == 1:
                    break          # left after two deltas: the rest is aborted
        finally:
            it.close()
    elif kind == "complete":
        prompt = msgs[0].get("content") if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict) else msgs
        check_result(sync.complete(prompt, **opts))
    elif kind == "count_tokens":
        if len(repr(msgs)) > 100_000:
            return "skipped (exact: it would tokenize 1 MB, minutes here)"
        n = engine.count_tokens(msgs)
        if not (isinstance(n, int) and n >= 0):
            raise Finding(f"count_tokens gave {n!r}")
    elif kind == "template":
        text = engine.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):
            raise Finding(f"apply_chat_template gave {text!r}")
    return "answered"


def probe(where: str) -> None:
    got = sync.chat(PROBE, **GREEDY).token_ids
    if got != baseline:
        raise Finding(f"the engine is not the same after {where}: the probe gave {got}, at first {baseline}")


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=False)
@given(kind=calls, case=cases)
def api_answers_or_raises_a_typed_error(kind, case):
    msgs, opts = case
    runs[0] += 1
    try:
        outcome = call(kind, msgs, opts)
    except intab.IntabError as e:
        if type(e) is intab.IntabError:
            raise Finding(f"a bare IntabError (no kind of its own): {e.message!r}") from e
        if not (isinstance(e.message, str) and e.message and isinstance(e.hint, str)):
            raise Finding(f"{type(e).__name__} without a message or hint: {e.to_dict()}") from e
        if type(e).__name__ == "InvalidParameter" and not e.param:
            raise Finding(f"InvalidParameter that names no parameter: {e.to_dict()}") from e
        outcome = type(e).__name__ + (f"({e.param})" if e.param else "")
    outcomes[f"{kind}: {outcome}"] += 1
    if runs[0] % PROBE_EVERY == 0:
        probe(f"{runs[0]} calls")


t0 = time.perf_counter()
finding = None
try:
    api_answers_or_raises_a_typed_error()
    probe("the last call")
except BaseException as e:  # noqa: BLE001 - every failure is the report's
    finding = "".join(traceback.format_exception(e))
json.dumps({
    "examples": EXAMPLES, "seed": SEED, "calls": runs[0], "seconds": round(time.perf_counter() - t0, 1),
    "outcomes": dict(sorted(outcomes.items())), "finding": finding, "baseline": baseline,
})
