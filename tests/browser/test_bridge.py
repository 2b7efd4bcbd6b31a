"""web/bridge.mjs against onnxruntime on the CPU, with a tiny graph of the contract's I/O.

The bridge runs prefill, decode, chunked prefill, truncate and reset in the browser; each
result must equal onnxruntime (CPython) fed the whole token history in one call. The tiny
graph's candidates depend on every cached position, so a KV cache that is lost, duplicated,
misordered or mis-sliced gives different candidates.
"""
from __future__ import annotations

import json

import pytest

from tiny_model import CONFIG, make_tiny_model, reference_forward

K = 6
# (action, argument, history the result must equal)
SCRIPT = [
    ("forward", [1, 2, 3, 4], [1, 2, 3, 4]),
    ("forward", [5], [1, 2, 3, 4, 5]),
    ("forward", [6, 7], [1, 2, 3, 4, 5, 6, 7]),
    ("truncate", 3, None),
    ("forward", [9], [1, 2, 3, 9]),
    ("forward", [10], [1, 2, 3, 9, 10]),
    ("truncate", 0, None),
    ("forward", [4], [4]),
]

RUN_SCRIPT = """
async ({backend, bundle, config, script, k}) => {
  const ort = await import('./vendor/ort/' + bundle);
  const { createBridge, wasmThreads } = await import('./bridge.mjs');
  ort.env.wasm.wasmPaths = new URL('./vendor/ort/', location.href).href;
  ort.env.wasm.numThreads = backend === 'wasm' ? wasmThreads() : 1;
  const modelBytes = new Uint8Array(await (await fetch('./tiny/model.onnx')).arrayBuffer());
  const bridge = await createBridge({ ort, modelBytes, config, backend });
  const out = { backend: bridge.backend, threads: bridge.threads, isolated: crossOriginIsolated, steps: [] };
  for (const [action, arg] of script) {
    if (action === 'forward') {
      const r = await bridge.forward(Int32Array.from(arg), bridge.kvLength, k);
      out.steps.push({ kv: bridge.kvLength, logits: Array.from(r.logits), ids: Array.from(r.ids), logsumexp: r.logsumexp,
                       types: [r.logits.constructor.name, r.ids.constructor.name, typeof r.logsumexp] });
    } else {
      await bridge.truncate(arg);
      out.steps.push({ kv: bridge.kvLength });
    }
  }
  // contract: forward throws when startPos !== kvLength; the cache is unchanged after it
  try { await bridge.forward(Int32Array.of(1), 0, k); out.mismatch = 'no error'; }
  catch (e) { out.mismatch = e.message; }
  try { await bridge.truncate(99); out.truncateTooFar = 'no error'; }
  catch (e) { out.truncateTooFar = e.message; }
  out.kvAfterErrors = bridge.kvLength;
  bridge.release();
  return out;
}
"""


@pytest.fixture(scope="module")
def tiny_root(web_only_root):
    d = web_only_root / "tiny"
    d.mkdir(exist_ok=True)
    (d / "model.onnx").write_bytes(make_tiny_model())
    (d / "config.json").write_text(json.dumps(CONFIG))
    return web_only_root


def _check(result, backend, model_bytes):
    assert result["backend"] == backend
    assert result["isolated"] is True
    if backend == "wasm":
        assert result["threads"] >= 1
    else:
        assert result["threads"] == 1
    for (action, arg, history), step in zip(SCRIPT, result["steps"]):
        if action == "truncate":
            assert step["kv"] == arg
            continue
        assert step["kv"] == len(history)
        assert step["types"] == ["Float32Array", "Int32Array", "number"]
        ref = reference_forward(model_bytes, history[: len(history) - len(arg)], arg, K)
        assert step["ids"] == ref["ids"], (history, step, ref)
        assert step["logits"] == pytest.approx(ref["logits"], abs=1e-4), history
        assert step["logsumexp"] == pytest.approx(ref["logsumexp"], abs=1e-4), history
    assert "startPos 0 !== kvLength 1" in result["mismatch"]
    assert "0..1" in result["truncateTooFar"]
    assert result["kvAfterErrors"] == 1


def test_bridge_wasm_matches_cpu_reference(browser, serve, tiny_root):
    url = serve(tiny_root)
    page = browser.new_page()
    try:
        page.goto(url + "blank.html")
        result = page.evaluate(RUN_SCRIPT, {"backend": "wasm", "bundle": "ort.wasm.min.mjs", "config": CONFIG,
                                            "script": SCRIPT, "k": K})
    finally:
        page.close()
    _check(result, "wasm", (tiny_root / "tiny" / "model.onnx").read_bytes())


# The worker uses the JSPI build where WebAssembly JSPI exists, else the asyncify build.
@pytest.mark.parametrize("bundle", ["ort.jspi.min.mjs", "ort.webgpu.min.mjs"])
def test_bridge_webgpu_matches_cpu_reference(webgpu_browser, serve, tiny_root, bundle):
    url = serve(tiny_root)
    page = webgpu_browser.new_page()
    try:
        page.goto(url + "blank.html")
        if not page.evaluate("async () => !!(navigator.gpu && await navigator.gpu.requestAdapter())"):
            pytest.skip("no WebGPU adapter in this Chromium")
        result = page.evaluate(RUN_SCRIPT, {"backend": "webgpu", "bundle": bundle, "config": CONFIG,
                                            "script": SCRIPT, "k": K})
    finally:
        page.close()
    _check(result, "webgpu", (tiny_root / "tiny" / "model.onnx").read_bytes())
