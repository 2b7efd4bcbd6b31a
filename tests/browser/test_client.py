"""The public JS client (static/intab.mjs) in Chromium on the real model: OpenAI-shaped objects
that validate against OpenAI's schemas, a WebLLM snippet and a Prompt API snippet run with only
their import (and model id) changed, requests that queue, aborts that free the engine at once,
exact logprobs (equal to the CPython engine's), many conversations on one engine, and typed errors
that name what is wrong and leave the engine usable."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from model_files import model_files, run_async

HERE = Path(__file__).resolve().parent
SCHEMAS = json.loads((HERE.parent / "openai_schemas.json").read_text())
USER = [{"role": "user", "content": "What is the capital of France?"}]


def validate(obj: dict, shape: str) -> None:
    jsonschema.validate(obj, {**SCHEMAS, "$ref": f"#/$defs/{shape}"})


@pytest.fixture(scope="module")
def api_site(static_root, tmp_path_factory) -> Path:
    """static/ (linked) plus a blank page and the snippets rewritten as the tests describe."""
    site = tmp_path_factory.mktemp("api-site")
    for p in Path(static_root).iterdir():
        os.symlink(p.resolve(), site / p.name)
    (site / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>api</title><body></body>\n")
    return site


@pytest.fixture(scope="module")
def api_url(serve, api_site) -> str:
    return serve(api_site)


@pytest.fixture(scope="module")
def api_page(browser, api_url):
    """One page with one loaded engine (WASM, intab's kernel) as window.engine."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(api_url + "blank.html")
    page.evaluate("""async () => {
        window.intab = await import('/intab.mjs');
        window.engine = await window.intab.create({ backend: 'wasm' });
    }""")
    yield page
    ctx.close()


def run_snippet(browser, api_site, api_url, name: str, changes: list[tuple[str, str]]) -> dict:
    """The snippet with each (old line, new line) change made and nothing else, run as a module."""
    src = (HERE / "snippets" / name).read_text()
    out = src
    for old, new in changes:
        assert src.count(old) == 1, old
        out = out.replace(old, new)
    diff = [(a, b) for a, b in zip(src.splitlines(), out.splitlines()) if a != b]
    assert len(diff) == len([c for c in changes if c[0]]) and len(src.splitlines()) + sum(1 for c in changes if not c[0]) >= len(out.splitlines())
    (api_site / name).write_text(out)
    (api_site / f"{name}.html").write_text(f'<!doctype html><meta charset=utf-8><script type="module" src="{name}"></script>\n')
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(api_url + f"{name}.html")
        page.wait_for_function("() => window.snippetResult || null", timeout=240_000)
        assert not errors, errors
        return page.evaluate("() => window.snippetResult")
    finally:
        ctx.close()


def test_a_webllm_snippet_runs_with_only_its_import_and_model_id_changed(browser, api_site, api_url, golden):
    got = run_snippet(browser, api_site, api_url, "webllm.mjs", [
        ('import * as webllm from "https://esm.run/@mlc-ai/web-llm";', 'import * as webllm from "/intab.mjs";'),
        ('const selectedModel = "SmolLM2-135M-Instruct-q0f32-MLC";', 'const selectedModel = "smollm2-135m-instruct";'),
    ])
    assert "Paris" in got["reply"]
    assert got["streamed"] == got["reply"] == got["fullReply"]   # greedy: the same answer twice
    assert got["usage"]["total_tokens"] == got["usage"]["prompt_tokens"] + got["usage"]["completion_tokens"]
    assert got["streamUsage"] == {**got["usage"], "extra": got["streamUsage"]["extra"]}


def test_a_prompt_api_snippet_runs_with_only_the_import_added(browser, api_site, api_url):
    src = (HERE / "snippets" / "prompt_api.mjs").read_text()
    (api_site / "prompt_api_run.mjs").write_text('import { LanguageModel } from "/intab.mjs";\n' + src)
    (api_site / "prompt_api.html").write_text('<!doctype html><meta charset=utf-8><script type="module" src="prompt_api_run.mjs"></script>\n')
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(api_url + "prompt_api.html")
        page.wait_for_function("() => window.snippetResult || null", timeout=240_000)
        assert not errors, errors
        got = page.evaluate("() => window.snippetResult")
    finally:
        ctx.close()
    assert got["availability"] in ("downloadable", "available")
    assert got["progress"][-1] == 1 and got["progress"] == sorted(got["progress"])
    assert "Paris" in got["result"] and "Rome" in got["streamed"]
    assert 0 < got["usage"] < got["window"] == 8192


def test_completion_and_chunks_validate_against_openai_schemas(api_page):
    got = api_page.evaluate("""async () => {
        const messages = [{ role: 'user', content: 'What is the capital of France?' }];
        const full = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 3 });
        const chunks = [];
        for await (const c of await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 12, stream: true,
                                                                 stream_options: { include_usage: true }, logprobs: true, top_logprobs: 2 })) chunks.push(c);
        const text = await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 6, logprobs: 2 });
        const textChunks = [];
        for await (const c of await engine.completions.create({ prompt: 'The capital of France is', temperature: 0, max_tokens: 6, stream: true })) textChunks.push(c);
        return { full, chunks, text, textChunks };
    }""")
    validate(got["full"], "chat.completion")
    for c in got["chunks"]:
        validate(c, "chat.completion.chunk")
    validate(got["text"], "text_completion")
    for c in got["textChunks"]:
        validate(c, "text_completion")
    full, chunks = got["full"], got["chunks"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == full["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == full["usage"]["completion_tokens"]
    assert chunks[-2]["choices"][0]["finish_reason"] == full["choices"][0]["finish_reason"] in ("stop", "length")
    streamed_lp = [e for c in chunks if c["choices"] and c["choices"][0]["logprobs"] for e in c["choices"][0]["logprobs"]["content"]]
    assert [e["token"] for e in streamed_lp] == [e["token"] for e in full["choices"][0]["logprobs"]["content"]]
    assert full["usage"]["completion_tokens"] == len(full["intab"]["token_ids"]) == len(full["choices"][0]["logprobs"]["content"])
    assert "".join(c["choices"][0]["text"] for c in got["textChunks"] if c["choices"]) == got["text"]["choices"][0]["text"]


def test_top_logprobs_equal_the_cpython_engines(api_page, built_model_dir):
    """The tab (intab's kernel) and CPython (onnxruntime on the same graph) give the same tokens and
    the same log-probabilities, up to the float noise of two summation orders (~1e-4)."""
    from intab.engine import Engine
    from intab_host.ort_backend import OrtBackend

    cfg = json.loads((built_model_dir / "config.json").read_text())
    ref_engine = Engine.from_files(model_files(built_model_dir), OrtBackend(built_model_dir / "model.onnx", cfg))
    ref = run_async(ref_engine.generate(USER, {"temperature": 0, "max_tokens": 10, "logprobs": True, "top_logprobs": 5}))
    got = api_page.evaluate("""async () => (await engine.chat.completions.create({ messages: [{ role: 'user', content: 'What is the capital of France?' }],
        temperature: 0, max_tokens: 10, logprobs: true, top_logprobs: 5 })).choices[0].logprobs.content""")
    assert len(got) == len(ref.logprobs) >= 8
    for tab, cpy in zip(got, ref.logprobs):
        assert tab["token"] == cpy["token"] and tab["bytes"] == cpy["bytes"]
        assert abs(tab["logprob"] - cpy["logprob"]) < 2e-3
        assert [t["token"] for t in tab["top_logprobs"][:3]] == [t["token"] for t in cpy["top_logprobs"][:3]]
        for a, b in zip(tab["top_logprobs"], cpy["top_logprobs"]):
            if a["token"] == b["token"]:
                assert abs(a["logprob"] - b["logprob"]) < 2e-3


def test_two_concurrent_requests_both_answer_in_order(api_page):
    got = api_page.evaluate("""async () => {
        const order = [];
        const ask = (q, n) => engine.chat.completions.create({ messages: [{ role: 'user', content: q }], temperature: 0, max_tokens: n })
            .then((r) => { order.push(q); return r.choices[0].message.content; });
        const [a, b] = await Promise.all([ask('What is the capital of France?', 24), ask('Name a colour.', 8)]);
        const alone = (await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Name a colour.' }], temperature: 0, max_tokens: 8 })).choices[0].message.content;
        return { order, a, b, alone };
    }""")
    assert got["order"] == ["What is the capital of France?", "Name a colour."]
    assert "Paris" in got["a"] and got["b"] == got["alone"]


def test_abort_mid_stream_then_the_next_request_answers_at_once(api_page):
    got = api_page.evaluate("""async () => {
        const ctrl = new AbortController();
        const chunks = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Write a long story about a dragon.' }],
            temperature: 0, max_tokens: 400, stream: true, signal: ctrl.signal });
        const next = engine.chat.completions.create({ messages: [{ role: 'user', content: 'What is the capital of France?' }], temperature: 0, max_tokens: 16 });
        let n = 0, last = null, tAbort = 0;
        for await (const c of chunks) {
            if (c.choices[0]?.delta.content && ++n === 5) { ctrl.abort(); tAbort = performance.now(); }
            last = c;
        }
        const tEnd = performance.now();
        const r = await next;
        const interrupted = engine.chat.completions.create({ messages: [{ role: 'user', content: 'Count to one hundred.' }],
            temperature: 0, max_tokens: 300, ignore_eos: true });
        await new Promise((r) => setTimeout(r, 1000));
        engine.interruptGenerate();
        const i = await interrupted;
        return { finish: last.choices[0].finish_reason, tokens: last.intab.token_ids.length, stopMs: tEnd - tAbort,
                 next: r.choices[0].message.content, nextFinish: r.choices[0].finish_reason,
                 iFinish: i.choices[0].finish_reason, iTokens: i.usage.completion_tokens };
    }""")
    # Stopped within a few steps of the abort: the deltas in flight to the page (~7 steps on a busy
    # machine) are all the worker made after it.
    assert got["finish"] == "abort" and got["tokens"] < 40
    assert "Paris" in got["next"] and got["nextFinish"] in ("stop", "length")
    assert got["iFinish"] == "abort" and 0 < got["iTokens"] < 300


def test_many_conversations_keep_their_kv_and_answer_as_fresh(api_page):
    """Two conversations alternate on one engine: coming back to one restores its KV snapshot
    instead of prefilling it again, and the answers equal a fresh engine's (greedy)."""
    got = api_page.evaluate("""async () => {
        const ask = (messages) => engine.generate('chat', messages, { temperature: 0, max_tokens: 24 });
        const a1 = [{ role: 'system', content: 'You are a geography teacher. ' + 'Answer in one sentence. '.repeat(40) },
                    { role: 'user', content: 'What is the capital of France?' }];
        const b1 = [{ role: 'system', content: 'You are a poet. ' + 'Write short lines. '.repeat(40) },
                    { role: 'user', content: 'Write about the sea.' }];
        const ra = await ask(a1), rb = await ask(b1);
        const a2 = [...a1, { role: 'assistant', content: ra.text }, { role: 'user', content: 'And of Italy?' }];
        const t0 = performance.now();
        const back = await ask(a2);
        const t1 = performance.now();
        await engine.resetChat();                 // forget every cache: the same turn, prefilled again
        const fresh = await ask(a2);
        const t2 = performance.now();
        return { restored: back.restored_tokens, reused: back.reused_tokens, prompt: back.prompt_tokens, kvMs: back.kv_ms,
                 backTtft: back.ttft_ms, freshTtft: fresh.ttft_ms, same: JSON.stringify(back.token_ids) === JSON.stringify(fresh.token_ids),
                 freshReused: fresh.reused_tokens };
    }""")
    print(f"\n  switching back to a {got['restored']}-token conversation: snapshot restore {got['kvMs']:.1f} ms, "
          f"TTFT {got['backTtft']:.0f} ms; prefilled again: TTFT {got['freshTtft']:.0f} ms")
    assert got["restored"] > 200 and got["reused"] == got["restored"] and got["freshReused"] == 0
    assert got["same"]


def test_prompt_api_sessions_are_conversations_of_their_own(api_page):
    got = api_page.evaluate("""async () => {
        const { LanguageModel } = intab;
        const s = await LanguageModel.create({ initialPrompts: [{ role: 'system', content: 'Answer in one short sentence.' }] });
        const u0 = s.contextUsage;
        const measured = await s.measureContextUsage('What is the capital of France?');
        const a = await s.prompt('What is the capital of France?');
        const u1 = s.contextUsage;
        const c = await s.clone();
        await s.append('Thanks.');
        const u2 = s.contextUsage;
        const both = await Promise.all([c.prompt('And of Italy?'), s.prompt('And of Spain?')]);
        const ctrl = new AbortController();
        setTimeout(() => ctrl.abort(), 300);
        const storyteller = await LanguageModel.create();
        const aborted = await storyteller.prompt('Write a long story about a dragon.', { signal: ctrl.signal }).then(() => 'resolved', (e) => e.name);
        s.destroy();
        const destroyed = await s.prompt('Hello?').then(() => 'resolved', (e) => e.name);
        const huge = await c.prompt('word '.repeat(9000)).then(() => 'resolved', (e) => [e.name, e.requested, e.quota]);
        // A context that overflows on append: the oldest turn goes, the system prompt stays.
        const o = await LanguageModel.create({ initialPrompts: [{ role: 'system', content: 'Be brief.' }] });
        let overflowed = 0;
        o.addEventListener('contextoverflow', () => { overflowed += 1; });
        for (let i = 0; i < 3; i++) await o.append('fox '.repeat(3000));
        const uo = o.contextUsage;
        const native = 'LanguageModel' in globalThis ? globalThis.LanguageModel : null;   // Chromium may ship its own
        const polyfilled = intab.installPolyfill();
        return { native: !!native, nativeKept: native === null || globalThis.LanguageModel === native, u0, measured, a, u1, u2, both, aborted, destroyed, huge, overflowed, uo, window: o.contextWindow,
                 polyfilled, global: globalThis.LanguageModel === LanguageModel, again: intab.installPolyfill() };
    }""")
    assert 0 < got["u0"] < got["u1"] < got["u2"]
    assert got["u0"] + got["measured"] >= got["u1"] - 12   # the answer adds its own tokens on top
    assert "Paris" in got["a"] and "Rome" in got["both"][0] and "Madrid" in got["both"][1]
    assert got["aborted"] == "AbortError" and got["destroyed"] == "InvalidStateError"
    assert got["huge"][0] == "QuotaExceededError" and got["huge"][1] > got["huge"][2] == 8192
    assert got["overflowed"] == 1 and got["uo"] <= got["window"]
    # installPolyfill() defines intab's only where the browser has none, and only once
    assert got["polyfilled"] is (not got["native"]) and got["nativeKept"] and got["again"] is False
    assert got["global"] is (not got["native"])


def test_prompt_api_response_constraint_schema_and_regexp(api_page):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                               "country": {"type": "string", "maxLength": 30}},
              "required": ["city", "country"], "additionalProperties": False}
    got = api_page.evaluate("""async (schema) => {
        const { LanguageModel } = intab;
        const s = await LanguageModel.create({ temperature: 0 });
        const q = 'Which city is the capital of France?';
        const described = await s.measureContextUsage(q, { responseConstraint: schema });
        const omitted = await s.measureContextUsage(q, { responseConstraint: schema, omitResponseConstraintInput: true });
        const plain = await s.measureContextUsage(q);
        const json = await s.prompt(q, { responseConstraint: schema });
        const t = await LanguageModel.create({ temperature: 0 });
        const parts = [];
        const stream = t.promptStreaming('Is Paris in France? Answer yes or no.', { responseConstraint: /(yes|no)\\./, omitResponseConstraintInput: true });
        for await (const p of stream) parts.push(p);
        const flags = await t.prompt('x', { responseConstraint: /a/i }).then(() => 'resolved', (e) => e.name);
        const refused = await t.prompt('x', { responseConstraint: { type: 'string', format: 'ipv9' } }).then(() => 'resolved', (e) => [e.name, e.message]);
        return { described, omitted, plain, json, regex: parts.join(''), flags, refused };
    }""", schema)
    jsonschema.validate(json.loads(got["json"]), schema)
    assert "Paris" in got["json"]
    assert got["regex"] in ("yes.", "no.")
    assert got["omitted"] == got["plain"] < got["described"]   # described to the model unless omitted
    assert got["flags"] == "NotSupportedError" and got["refused"][0] == "NotSupportedError"
    assert "format" in got["refused"][1]


def test_bad_requests_are_typed_errors_naming_the_field_and_the_engine_stays_usable(api_page):
    got = api_page.evaluate("""async () => {
        const m = [{ role: 'user', content: 'Hi' }];
        const cases = {
            unknown: { messages: m, temprature: 0.5 },
            unsupported: { messages: m, frequency_penalty: 0.5 },
            n: { messages: m, n: 2 },
            range: { messages: m, top_p: 2 },
            type: { messages: m, max_tokens: 'many' },
            empty: { messages: [] },
            role: { messages: [{ role: 'robot', content: 'x' }] },
            image: { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
            model: { messages: m, model: 'gpt-4o' },
            tool: { messages: m, tools: [{ type: 'function', function: { name: 'has space', parameters: {} } }] },
            schema: { messages: m, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', not: {} } } } },
            long: { messages: [{ role: 'user', content: 'fox '.repeat(9000) }] },
            streamRange: { messages: m, temperature: -1, stream: true },
        };
        const out = {};
        for (const [k, req] of Object.entries(cases)) {
            try { await engine.chat.completions.create(req); out[k] = 'resolved'; }
            catch (e) { out[k] = { name: e.name, param: e.param, message: e.message, hint: e.hint, typed: e instanceof intab.IntabError }; }
        }
        out.after = (await engine.chat.completions.create({ messages: [{ role: 'user', content: 'What is the capital of France?' }], temperature: 0, max_tokens: 8 })).choices[0].message.content;
        return out;
    }""")
    expect = {"unknown": ("InvalidParameter", "temprature"), "unsupported": ("UnsupportedParameter", "frequency_penalty"),
              "n": ("UnsupportedParameter", "n"), "range": ("InvalidParameter", "top_p"), "type": ("InvalidParameter", "max_tokens"),
              "empty": ("InvalidParameter", "messages"), "role": ("InvalidParameter", "messages[0].role"),
              "image": ("UnsupportedParameter", "messages[0].content[0]"), "model": ("InvalidParameter", "model"),
              "tool": ("ToolError", "tools[0].function.name"), "schema": ("UnsupportedSchema", "response_format"),
              "long": ("PromptTooLong", "messages"),
              "streamRange": ("InvalidParameter", "temperature")}
    for k, (name, param) in expect.items():
        e = got[k]
        assert e != "resolved", k
        assert (e["name"], e["param"], e["typed"]) == (name, param, True), (k, e)
        assert e["message"] and e["hint"] and e["hint"] not in e["message"], (k, e)   # fields apart
    assert "Paris" in got["after"]


def test_load_errors_and_unload_are_typed(browser, api_url):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(api_url + "blank.html")
        got = page.evaluate("""async () => {
            const intab = await import('/intab.mjs');
            const name = (p) => p.then(() => 'resolved', (e) => [e.name, e.param || null, e.hint || '']);
            const out = {
                model: await name(intab.create({ model: 'no-such-model' })),
                backend: await name(intab.create({ backend: 'cuda' })),
                option: await name(intab.create({ modle: 'x' })),
                aborted: await name(intab.create({ signal: AbortSignal.abort() })),
            };
            const e = await intab.create({ backend: 'wasm' });
            await e.unload();
            out.unloaded = await name(e.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] }));
            out.imported = (await import('/intab.mjs')) === intab;
            return out;
        }""")
    finally:
        ctx.close()
    assert got["model"][:2] == ["LoadError", "model"] and "smollm2-135m-instruct" in got["model"][2]
    assert got["backend"][:2] == ["BackendError", "backend"]
    assert got["option"][:2] == ["InvalidParameter", "modle"]
    assert got["aborted"][0] == "AbortError"
    assert got["unloaded"][0] == "Unloaded" and got["unloaded"][2]
    assert got["imported"] is True


START = """async (options) => {
    const intab = await import('/intab.mjs');
    const e = await intab.create({ backend: 'wasm', ...options });
    const r = await e.chat.completions.create({ messages: [{ role: 'user', content: 'What is the capital of France?' }],
                                                temperature: 0, max_tokens: 12 });
    const out = { timings: e.info.timings, spans: e.info.timeline.spans, origin: e.info.timeline.origin,
                  text: r.choices[0].message.content };
    await e.unload();
    return out;
}"""


def _start(browser, url: str, options: dict) -> dict:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(url + "blank.html")
        return page.evaluate(START, options)
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def other_bundle_url(serve, api_site, tmp_path_factory) -> str:
    """The site with a Python bundle of other bytes (a zip comment added: same files) than the one
    its Pyodide snapshot was made from, as after a release whose snapshot is older."""
    site = tmp_path_factory.mktemp("other-bundle-site")
    for p in api_site.iterdir():
        if p.name != "py":
            os.symlink(p.resolve(), site / p.name)
    (site / "py").mkdir()
    for p in (api_site / "py").iterdir():
        if p.name != "intab-bundle.zip":
            os.symlink(p.resolve(), site / "py" / p.name)
    import zipfile
    shutil.copy(api_site / "py" / "intab-bundle.zip", site / "py" / "intab-bundle.zip")
    with zipfile.ZipFile(site / "py" / "intab-bundle.zip", "a") as z:
        z.comment = b"another build"
    return serve(site)


def test_the_worker_boots_from_the_snapshot_and_answers_as_without_it(browser, api_site, api_url, other_bundle_url):
    if not (api_site / "py" / "intab-snapshot.bin.gz").exists():
        pytest.skip("static/py/intab-snapshot.bin.gz is missing: python3 build.py build")
    snap = _start(browser, api_url, {})
    scratch = _start(browser, api_url, {"snapshot": False})
    other = _start(browser, other_bundle_url, {})
    print(f"\nready: snapshot {snap['timings']}, without {scratch['timings']}, other bundle {other['timings']}")
    assert snap["timings"].get("pyodideSnapshot") is True
    assert "pyodideSnapshot" not in scratch["timings"] and "python.snapshot" not in scratch["spans"]
    assert other["timings"].get("pyodideSnapshot") is True   # booted from it, intab imported anew
    assert snap["text"] and snap["text"] == scratch["text"] == other["text"]
    # The timeline: every phase of the start, each [start, end] on the worker's clock.
    for phase in ("worker", "pyodide.boot", "python.bundle", "python.unpack", "python.import", "python.session",
                  "kernel.compile", "model.manifest", "model.weights", "kernel.bridge", "ready"):
        a, b = snap["spans"][phase]
        assert 0 <= a <= b <= snap["spans"]["ready"][1], (phase, a, b)
    assert snap["origin"] > 0
