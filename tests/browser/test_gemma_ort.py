"""Gemma 3 270M in Chromium on the onnxruntime-web path, the way the tab runs it: the built
site's model files fetched, web/weights.mjs expanding its Q4_K / Q5_0 / Q6_K / Q8_0 blocks into the
graph's float32 weights tensor by tensor, onnxruntime-web (WASM) running the graph through
web/bridge.mjs, greedy over the candidates: the tokens equal transformers' on the same GGUF
(tests/golden/gemma3-270m.greedy.json). web/capabilities.mjs, which the worker reads, sends this
model to onnxruntime and says why not the kernel.

The demo page itself cannot chat with a base model yet (no chat template: the engine's text
completion is the lead's, issue 10), so the prompt ids come from the golden file; tests/test_gemma.py
checks that intab's tokenizer gives the same ids.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gemma3-270m.greedy.json"
CASES = ("capital", "code_python", "chinese")   # a sample: ~10 s a case in the tab at 2 threads

RUN = """
async ({ id, config, manifest, cases, maxNew, eos }) => {
  const { createBridge, wasmThreads } = await import('/bridge.mjs');
  const { lazyWeights } = await import('/weights.mjs');
  const { kernelMisfit, ortMisfit } = await import('/capabilities.mjs');
  const ort = await import('/vendor/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = new URL('/vendor/ort/', location.href).href;
  ort.env.wasm.numThreads = wasmThreads();
  ort.env.logLevel = 'error';
  const get = async (n) => new Uint8Array(await (await fetch(`/models/${id}/${n}`)).arrayBuffer());
  const layout = manifest.weights;
  const [modelBytes, src] = await Promise.all([get('model.onnx'), get(layout.transport)]);
  const t0 = performance.now();
  const bridge = await createBridge({ ort, modelBytes, config, backend: 'wasm',
    sessionOptions: { externalData: [{ path: layout.external, data: lazyWeights(layout, src) }] } });
  const out = { kernel: kernelMisfit(manifest, config), ort: ortMisfit(manifest, config, 'wasm'),
                sessionMs: performance.now() - t0, threads: bridge.threads, cases: [] };
  for (const c of cases) {
    await bridge.truncate(0);
    const t = performance.now();
    let r = await bridge.forward(Int32Array.from(c.prompt_ids), 0, 8);
    const ids = [];
    for (;;) {
      ids.push(r.ids[0]);
      if (ids[ids.length - 1] === eos || ids.length === maxNew) break;
      r = await bridge.forward(Int32Array.of(r.ids[0]), bridge.kvLength, 8);
    }
    out.cases.push({ name: c.name, ids, ms: performance.now() - t });
  }
  bridge.release();
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


@pytest.mark.skipif(not GOLDEN.exists(), reason="no golden file for Gemma 3 270M")
def test_gemma_greedy_tokens_in_chromium_on_onnxruntime(browser, gemma_site, static_root):
    golden = json.loads(GOLDEN.read_text())
    folder = static_root / "models" / "gemma3-270m"
    cases = [c for c in golden["cases"] if c["name"] in CASES]
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(gemma_site + "blank.html")
        out = page.evaluate(RUN, {"id": "gemma3-270m", "config": json.loads((folder / "config.json").read_text()),
                                  "manifest": json.loads((folder / "manifest.json").read_text()),
                                  "cases": cases, "maxNew": golden["max_new_tokens"], "eos": golden["eos_token_id"]})
    finally:
        ctx.close()
    print(f"session {out['sessionMs']:.0f} ms, {out['threads']} threads; "
          + ", ".join(f"{c['name']} {len(c['ids'])} tokens in {c['ms']:.0f} ms" for c in out["cases"]))
    assert out["kernel"] == "the kernel runs llama models, not gemma3" and out["ort"] == ""
    for case, got in zip(cases, out["cases"]):
        assert got["ids"] == case["output_ids"], case["name"]
