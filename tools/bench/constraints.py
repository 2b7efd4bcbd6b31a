"""`python3 build.py bench --constraints`: the constraint engine's costs under CPython.

Per schema (the Glaive function-call and GitHub sample of tests/schema_suites/jsonschemabench):
compile time (schema -> grammar -> automaton), then the per-token mask time (median, p99) while
each valid instance is fed token by token, cold (first use of each state) and warm (the same
answer again: the per-state cache); a tool call's constraint: compile, mask and decode tok/s with
and without it on the real model (--no-model skips that).

With --browser the same measurement (MEASURE, one source for both runtimes) runs in Pyodide in
headless Chromium, on the site's Pyodide and the intab wheel installed from the site, next to the
CPython figures of the same run; then decode tok/s through the JS client with and without a
response_format constraint, on intab's kernel in the same page.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "py"), str(ROOT)]


def q(xs, p):
    xs = sorted(xs)
    return xs[int(p * (len(xs) - 1))] if xs else float("nan")


# The measurement, run by CPython (exec) and by Pyodide (runPythonAsync) alike: `tok_json`,
# `tok_config` (texts) and `cases` (JSON: [schema, first valid instance or null]) are given;
# `result` is set (and `tok`, `idx` are left in the scope).
MEASURE = """
import json, statistics, time
from intab.constrain import ConstraintCompiler, ConstraintError, ConstraintSpec, TokenIndex
from intab.tokenizer import Tokenizer

def _q(xs, p):
    xs = sorted(xs)
    return xs[int(p * (len(xs) - 1))] if xs else float("nan")

tok = Tokenizer.from_json(tok_json, json.loads(tok_config))
t = time.perf_counter()
idx = TokenIndex.for_tokenizer(tok, [2])
index_ms = (time.perf_counter() - t) * 1e3
compile_ms, cold, warm, refused = [], [], [], 0
for schema, valid in json.loads(cases):
    t = time.perf_counter()
    try:
        c = ConstraintCompiler(idx).compile(ConstraintSpec("json_schema", schema))
    except ConstraintError:
        refused += 1
        continue
    compile_ms.append((time.perf_counter() - t) * 1e3)
    if valid is None:
        continue
    ids = tok.encode(json.dumps(valid, ensure_ascii=False), add_special_tokens=False)
    for times in (cold, warm):
        m = c.matcher()
        for tid in ids:
            t = time.perf_counter()
            m.mask()
            times.append((time.perf_counter() - t) * 1e3)
            if not m.allows(tid):
                break
            m.accept(tid)
result = json.dumps({"index_ms": index_ms, "compiled": len(compile_ms), "refused": refused,
                     "compile": [statistics.median(compile_ms), _q(compile_ms, .9), max(compile_ms)],
                     "cold": [len(cold), statistics.median(cold), _q(cold, .99)],
                     "warm": [len(warm), statistics.median(warm), _q(warm, .99)]})
"""

# In the page of the site's Pyodide example (its CSP is the app's): Pyodide from vendor/, micropip
# from py/, intab from the site's index; then the same MEASURE.
PYODIDE_RUN = """async ({ code, tokJson, tokConfig, cases, micropip }) => {
  const { loadPyodide } = await import('/vendor/pyodide/pyodide.mjs');
  const t0 = performance.now();
  const py = await loadPyodide({ indexURL: '/vendor/pyodide/' });
  await py.loadPackage(location.origin + '/py/' + micropip);
  await py.runPythonAsync(`import micropip\nawait micropip.install("intab", index_urls=["${location.origin}/py/simple/{package_name}/"])`);
  const boot = performance.now() - t0;
  py.globals.set('tok_json', tokJson); py.globals.set('tok_config', tokConfig); py.globals.set('cases', cases);
  await py.runPythonAsync(code);
  return { boot_ms: boot, ...JSON.parse(py.globals.get('result')), version: py.version };
}"""

# Decode through the JS client: the same prompt free and under a schema, alternated, greedy.
DECODE_RUN = """async ({ schema, runs }) => {
  const intab = await import('/intab.mjs');
  const engine = await intab.create({ backend: 'wasm' });
  const messages = [{ role: 'user', content: 'Describe a person: name, age, city, as JSON.' }];
  const rows = [];
  for (let i = 0; i < runs; i++) {
    const c = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 64,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
    const f = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: c.usage.completion_tokens });
    rows.push([c.usage.extra.decode_tokens_per_s, f.usage.extra.decode_tokens_per_s, c.usage.completion_tokens,
               f.usage.completion_tokens, c.choices[0].message.content]);
  }
  const info = { kernel: engine.info.kernel, threads: engine.info.threads };
  await engine.unload();
  return { rows, info };
}"""

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40},
                                            "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                            "city": {"type": "string", "maxLength": 40}},
          "required": ["name", "age", "city"], "additionalProperties": False}


MODEL_DIR = ROOT / ".cache" / "build" / "smollm2-135m-instruct"


def bench_cases() -> list:
    """[schema, its first valid instance or None] of the Glaive and easy/trivial GitHub schemas of
    tests/schema_suites/jsonschemabench (the first 40)."""
    files = sorted((ROOT / "tests" / "schema_suites" / "jsonschemabench").glob("*.json"))
    files = [f for f in files if f.name.startswith(("Glaive", "Github_easy", "Github_trivial"))][:40]
    cases = []
    for f in files:
        case = json.loads(f.read_text())
        valid = [x["data"] for x in case["tests"] if x["valid"]]
        cases.append([case["schema"], valid[0] if valid else None])
    return cases


def measure_here(tok_json: str, tok_config: str, cases_json: str) -> dict:
    """MEASURE under this CPython; its scope (`result`, `tok`, `idx`)."""
    scope = {"tok_json": tok_json, "tok_config": tok_config, "cases": cases_json}
    exec(MEASURE, scope)
    return scope


def _report(label: str, r: dict) -> None:
    print(f"[{label}] token index (once per tokenizer): {r['index_ms']:.0f} ms")
    print(f"[{label}] schemas: {r['compiled']} compiled, {r['refused']} refused")
    print(f"[{label}] compile: median {r['compile'][0]:.1f} ms, p90 {r['compile'][1]:.1f}, max {r['compile'][2]:.1f}")
    for name, key in (("mask, first use", "cold"), ("mask, cached", "warm")):
        n, med, p99 = r[key]
        print(f"[{label}] {name}: {n} tokens, median {med:.3f} ms, p99 {p99:.2f} ms")


def browser(argv: list[str]) -> int:
    """CPython and Pyodide-in-Chromium on the same cases in one run, then decode with and without
    a constraint through the JS client."""
    import os

    from bench import BASE_ARGS, CHROMIUM, Counter, make_bench_server
    from playwright.sync_api import sync_playwright

    import build
    build.build()
    d = MODEL_DIR
    tok_json, tok_config = (d / "tokenizer.json").read_text(), (d / "tokenizer_config.json").read_text()
    cases = bench_cases()
    cases_json = json.dumps(cases)
    print(f"load average {os.getloadavg()[0]:.1f}; {len(cases)} schemas (GitHub/Glaive, JSONSchemaBench)")
    cpy = json.loads(measure_here(tok_json, tok_config, cases_json)["result"])
    _report("CPython", cpy)
    server = make_bench_server(build.STATIC, Counter())
    base = "http://127.0.0.1:%d" % server.server_address[1]
    runs = 3
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        page = b.new_page()
        page.goto(base + "/examples/pyodide.html")
        pyo = page.evaluate(PYODIDE_RUN, {"code": MEASURE, "tokJson": tok_json, "tokConfig": tok_config,
                                          "cases": cases_json,
                                          "micropip": next((build.STATIC / "py").glob("micropip-*.whl")).name})
        print(f"[Pyodide {pyo['version']}] boot + micropip install of intab: {pyo['boot_ms']:.0f} ms")
        _report(f"Pyodide {pyo['version']}", pyo)
        print(f"Pyodide / CPython: compile median {pyo['compile'][0] / cpy['compile'][0]:.1f}x, "
              f"first-use mask median {pyo['cold'][1] / cpy['cold'][1]:.1f}x")
        page.close()
        page = b.new_page()
        page.goto(base + "/examples/pyodide.html")
        dec = page.evaluate(DECODE_RUN, {"schema": PERSON, "runs": runs})
        b.close()
    server.shutdown()
    c = statistics.median(r[0] for r in dec["rows"])
    f = statistics.median(r[1] for r in dec["rows"])
    print(f"[Chromium, JS client, {dec['info']['kernel']} kernel, {dec['info']['threads']} threads] decode: "
          f"{c:.1f} tok/s under a schema, {f:.1f} tok/s free ({c / f:.2f}x), median of {runs}; "
          f"{dec['rows'][-1][2]} tokens: {dec['rows'][-1][4]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    if "--browser" in argv:
        return browser([a for a in argv if a != "--browser"])
    d = MODEL_DIR
    scope = measure_here((d / "tokenizer.json").read_text(), (d / "tokenizer_config.json").read_text(),
                         json.dumps(bench_cases()))
    _report("CPython", json.loads(scope["result"]))
    if "--no-model" not in argv:
        tool_calls(d, scope["tok"], scope["idx"])
    return 0


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"],
        "additionalProperties": False}}},
    {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
        "required": ["query", "limit"], "additionalProperties": False}}},
]


def tool_calls(d: Path, tok, idx) -> None:
    """A tool call's constraint (3 tools, tool_choice 'required'): compile time, per-token mask
    time along the real model's greedy call, and decode tok/s of that call against the same number
    of unconstrained tokens, in one run (CPython, onnxruntime)."""
    import asyncio

    from intab.config import GenerationConfig
    from intab.constrain import ConstraintCompiler
    from intab.engine import Engine
    from intab_host.ort_backend import OrtBackend

    spec = GenerationConfig(tools=tuple(TOOLS), tool_choice="required").constraint
    t = time.perf_counter()
    cc = ConstraintCompiler(idx).compile(spec)
    print(f"tool call (3 tools): compile {(time.perf_counter() - t) * 1e3:.1f} ms")
    files = {n: (d / n).read_text() for n in ("tokenizer.json", "tokenizer_config.json", "config.json",
                                              "generation_config.json", "manifest.json")}
    engine = Engine.from_files(files, OrtBackend(d / "model.onnx", json.loads(files["config.json"])))
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]

    async def go():
        rows = []
        for _ in range(3):
            call = await engine.generate(msgs, {"temperature": 0, "tools": TOOLS, "tool_choice": "required",
                                                "max_tokens": 120})
            free = await engine.generate(msgs, {"temperature": 0, "max_tokens": call.new_tokens, "ignore_eos": True})
            rows.append((call, free))
        return rows

    rows = asyncio.run(go())
    call = rows[-1][0]
    m = cc.matcher()
    times = []
    for tid in call.token_ids:
        t = time.perf_counter()
        m.mask()
        times.append((time.perf_counter() - t) * 1e3)
        m.accept(tid)
    print(f"  the call: {call.new_tokens} tokens, {call.tool_calls[0]['function']}")
    print(f"  mask along it (first use of each state): median {statistics.median(times):.3f} ms, "
          f"p99 {q(times, .99):.2f} ms")
    c = statistics.median(r[0].decode_tok_s for r in rows)
    f = statistics.median(r[1].decode_tok_s for r in rows)
    print(f"  decode: {c:.1f} tok/s constrained, {f:.1f} tok/s free ({c / f:.2f}x), median of {len(rows)}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
