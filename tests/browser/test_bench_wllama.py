"""The benchmark's wllama page (tools/bench/pages/wllama.mjs) on the real GGUF: it loads in the
multi-thread build, tokenizes the templated prompt to intab's ids (by count), and its greedy ids
equal the reference's (transformers on the same GGUF, tests/golden) for the tokens whose top-1
margin leaves room for Q4_1 x Q8 rounding (>= 0.5 logits). Not a timing: `build.py bench` times it."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))

import bench  # noqa: E402

CASE = "code_python"   # margins >= 0.58 over its first 16 tokens
TOKENS = 12


def _ids(v):
    return v if isinstance(v, list) else ast.literal_eval(v)


def test_wllama_page_gives_the_reference_greedy_tokens(browser, tmp_path):
    from models.recipes import DEFAULT
    from models.source import fetch_gguf

    golden = json.loads((ROOT / "tests" / "golden" / f"{DEFAULT.model_id}.greedy.json").read_text())
    case = next(c for c in golden["cases"] if c["name"] == CASE)
    margins = _ids(case["margins"])
    n = next((i for i, m in enumerate(margins[:TOKENS]) if m < 0.5), TOKENS)
    site = tmp_path / "site"
    (site / "gguf").mkdir(parents=True)
    (site / "bench-data").mkdir()
    (site / "gguf" / f"{DEFAULT.model_id}.gguf").symlink_to(fetch_gguf(DEFAULT, ROOT / ".cache").resolve())
    (site / "wllama").symlink_to(bench.wllama_dist().resolve())
    (site / "bench").symlink_to((ROOT / "tools" / "bench" / "pages").resolve())
    ids = _ids(case["prompt_ids"])
    plan = {"prompts": [{"name": "p200", "ids": ids, "text": case["prompt_text"], "kind": "chat", "max_tokens": n}]}
    (site / "bench-data" / "plan.json").write_text(json.dumps(plan))
    server = bench.make_bench_server(site, bench.Counter())
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/bench/wllama.html?model={DEFAULT.model_id}&threads=2&gen=1")
        page.wait_for_function("() => ['done', 'error'].includes(document.body.dataset.bench)", timeout=600_000, polling=250)
        res = page.evaluate("() => window.benchResult")
        page.close()
    finally:
        server.shutdown()
    assert res["error"] is None, res["error"]
    assert res["info"]["multithread"] and res["info"]["crossOriginIsolated"]
    run = res["runs"][0]
    assert run["prompt_ids_match"] is True and run["new_tokens"] == n
    assert run["token_ids"] == _ids(case["output_ids"])[:n]
