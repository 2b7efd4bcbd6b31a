"""`python3 build.py bench --constraints`: the constraint engine's costs under CPython.

Per schema (the Glaive function-call and GitHub sample of tests/schema_suites/jsonschemabench):
compile time (schema -> grammar -> automaton), then the per-token mask time (median, p99) while
each valid instance is fed token by token, cold (first use of each state) and warm (the same
answer again: the per-state cache); a tool call's constraint: compile, mask and decode tok/s with
and without it on the real model (--no-model skips that). Pyodide in Chromium is not measured yet.
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


def main(argv: list[str] | None = None) -> int:
    from intab.constrain import ConstraintCompiler, ConstraintError, ConstraintSpec, TokenIndex
    from intab.tokenizer import Tokenizer

    d = ROOT / ".cache" / "build" / "smollm2-135m-instruct"
    tok = Tokenizer.from_json((d / "tokenizer.json").read_text(), json.loads((d / "tokenizer_config.json").read_text()))
    t = time.perf_counter()
    idx = TokenIndex.for_tokenizer(tok, [2])
    index_ms = (time.perf_counter() - t) * 1e3
    files = sorted((ROOT / "tests" / "schema_suites" / "jsonschemabench").glob("*.json"))
    files = [f for f in files if f.name.startswith(("Glaive", "Github_easy", "Github_trivial"))][:40]
    compile_ms, cold, warm, refused = [], [], [], 0
    for f in files:
        case = json.loads(f.read_text())
        valid = [x["data"] for x in case["tests"] if x["valid"]]
        t = time.perf_counter()
        try:
            c = ConstraintCompiler(idx).compile(ConstraintSpec("json_schema", case["schema"]))
        except ConstraintError:
            refused += 1
            continue
        compile_ms.append((time.perf_counter() - t) * 1e3)
        for v in valid[:1]:
            ids = tok.encode(json.dumps(v, ensure_ascii=False), add_special_tokens=False)
            for times in (cold, warm):
                m = c.matcher()
                for tid in ids:
                    t = time.perf_counter()
                    m.mask()
                    times.append((time.perf_counter() - t) * 1e3)
                    if not m.allows(tid):
                        break
                    m.accept(tid)
    print(f"token index (once per tokenizer): {index_ms:.0f} ms")
    print(f"schemas: {len(compile_ms)} compiled, {refused} refused")
    print(f"compile: median {statistics.median(compile_ms):.1f} ms, p90 {q(compile_ms, .9):.1f}, max {max(compile_ms):.1f}")
    for name, xs in (("mask, first use", cold), ("mask, cached", warm)):
        print(f"{name}: {len(xs)} tokens, median {statistics.median(xs):.3f} ms, p99 {q(xs, .99):.2f} ms")
    if "--no-model" not in argv:
        tool_calls(d, tok, idx)
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
