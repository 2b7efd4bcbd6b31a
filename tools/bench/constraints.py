"""`python3 build.py bench --constraints`: the constraint engine's costs under CPython.

Per schema (the Glaive function-call and GitHub sample of tests/schema_suites/jsonschemabench):
compile time (schema -> grammar -> automaton), then the per-token mask time (median, p99) while
each valid instance is fed token by token, cold (first use of each state) and warm (the same
answer again: the per-state cache). Pyodide in Chromium is not measured yet (see the report).
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
