"""Gemma 3 270M in Chromium, through the public client (intab.mjs: intab.create, then
completions.create, a base model's text completion), on both WASM paths:
- kernel 'ort': web/weights.mjs expands its blocks into the graph's float32 weights tensor by
  tensor, onnxruntime-web (WASM) runs the graph;
- kernel 'auto': the worker asks web/capabilities.mjs whether intab's kernel runs it (the
  architecture, yes; its Q4_K/Q5_0/Q6_K blocks once the kernel computes them: skipped until then,
  naming the kind), and the kernel runs it;
Python in Pyodide tokenizes and samples. Greedy tokens equal transformers' on the same
GGUF (tests/golden/gemma3-270m.greedy.json; `ignore_eos`, as the reference never stops early), and
intab's tokenizer in the tab gives the reference's prompt ids.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from model_files import node_json

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gemma3-270m.greedy.json"
CASES = ("capital", "code_python", "chinese", "digits_tabs")   # a sample: ~10-30 s a case at 2 threads

RUN = """
async ({ id, config, manifest, cases, maxNew, kernel }) => {
  const intab = await import('/intab.mjs');
  const { kernelMisfit, ortMisfit } = await import('/capabilities.mjs');
  const t0 = performance.now();
  const engine = await intab.create({ model: id, backend: 'wasm', kernel });
  const out = { table: { kernel: kernelMisfit(manifest, config), ort: ortMisfit(manifest, config, 'wasm') },
                info: { kernel: engine.info.kernel, kernelReason: engine.info.kernelReason, threads: engine.info.threads,
                        model: engine.info.model.id }, loadMs: performance.now() - t0, cases: [] };
  for (const c of cases) {
    const t = performance.now();
    const ids = await engine.tokenize(c.prompt, { addSpecialTokens: true });   // BOS, as completions do
    const r = await engine.completions.create({ prompt: c.prompt, max_tokens: maxNew, temperature: 0, ignore_eos: true });
    out.cases.push({ name: c.name, promptIds: Array.from(ids), ids: r.intab.token_ids,
                     finish: r.choices[0].finish_reason, ms: performance.now() - t });
  }
  await engine.unload();
  return out;
}
"""


@pytest.fixture(scope="module")
def gemma_site(static_root, serve, tmp_path_factory):
    """The built site plus a blank page (the demo page would boot SmolLM2 beside it)."""
    if not (static_root / "models" / "gemma3-270m" / "manifest.json").exists():
        pytest.skip("static/ has no gemma3-270m: run `python3 build.py build`")
    root = tmp_path_factory.mktemp("gemma-site")
    for entry in static_root.iterdir():
        os.symlink(entry, root / entry.name)
    (root / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>blank</title>\n")
    return serve(root)


def run_cases(browser, gemma_site, static_root, kernel: str) -> tuple[dict, list[dict]]:
    golden = json.loads(GOLDEN.read_text())
    folder = static_root / "models" / "gemma3-270m"
    cases = [c for c in golden["cases"] if c["name"] in CASES]
    ctx = browser.new_context()
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(gemma_site + "blank.html")
        out = page.evaluate(RUN, {"id": "gemma3-270m", "config": json.loads((folder / "config.json").read_text()),
                                  "manifest": json.loads((folder / "manifest.json").read_text()),
                                  "cases": cases, "maxNew": golden["max_new_tokens"], "kernel": kernel})
    finally:
        ctx.close()
    print(f"load {out['loadMs']:.0f} ms, {out['info']}; "
          + ", ".join(f"{c['name']} {len(c['ids'])} tokens in {c['ms']:.0f} ms" for c in out["cases"]))
    assert out["info"]["model"] == "gemma3-270m"
    for case, got in zip(cases, out["cases"]):
        assert got["promptIds"] == case["prompt_ids"], case["name"]
        assert got["ids"] == case["output_ids"], case["name"]
        assert got["finish"] == "length"
    assert not errors
    return out, cases


def kernel_verdict(static_root) -> str:
    folder = static_root / "models" / "gemma3-270m"
    return node_json("capabilities.mjs", "kernelMisfit", "kernelMisfit(...data)",
                     [json.loads((folder / f).read_text()) for f in ("manifest.json", "config.json")])


@pytest.mark.skipif(not GOLDEN.exists(), reason="no golden file for Gemma 3 270M")
def test_gemma_completions_in_chromium_equal_transformers(browser, gemma_site, static_root):
    out, _ = run_cases(browser, gemma_site, static_root, "ort")
    # the architecture is the kernel's; only block kinds it may lack keep Gemma from it under 'auto'
    assert out["table"] == {"kernel": kernel_verdict(static_root), "ort": ""}
    assert "gemma3" not in out["table"]["kernel"]
    assert out["info"]["kernel"] == "ort" and out["info"]["kernelReason"] == "requested"


@pytest.mark.skipif(not GOLDEN.exists(), reason="no golden file for Gemma 3 270M")
def test_gemma_completions_on_intab_kernel_in_chromium(browser, gemma_site, static_root):
    assert kernel_verdict(static_root) == ""   # gemma3 in Q4_K_M (Q4_K, Q6_K, Q5_0, Q8_0, F32)
    out, _ = run_cases(browser, gemma_site, static_root, "auto")
    assert out["table"] == {"kernel": "", "ort": ""}
    assert out["info"]["kernel"] == "intab", out["info"]
