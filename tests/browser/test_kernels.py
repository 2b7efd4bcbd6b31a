"""Which kernel runs the model on WASM, in Chromium with the real model: intab's own kernel
(web/kernel, the default) or onnxruntime-web (?kernel=ort).

- ?kernel=ort still gives the reference's greedy tokens, and the page says it runs onnxruntime;
- a page that is not cross-origin isolated (a static host without COOP/COEP) runs the intab
  kernel on one thread (kernel/decoder-st.wasm) and gives the same tokens;
- an unknown ?kernel= is a clear error naming the valid values;
- a manifest from before the kernel (no roles) falls back to onnxruntime-web and still answers.
(?backend=webgpu&kernel=intab is in test_app_webgpu.py; ?memory=low, onnxruntime's, in test_app.py.)
"""
from __future__ import annotations

import pytest

from app_driver import open_app, open_failing
from test_app import GOLDEN_CASES, check_golden, run_golden_case

# The shortest case, a multi-turn one with a system prompt, and the longest prompt (1051 tokens).
ORT_CASES = [c for c in GOLDEN_CASES if c["name"] in ("capital", "multi_turn_system", "long_summary")]


@pytest.fixture(scope="module")
def ort_page(browser, app_url):
    ctx = browser.new_context()
    page = open_app(ctx, app_url + "?backend=wasm&kernel=ort")
    yield page
    ctx.close()


def test_onnxruntime_kernel_is_reported(ort_page):
    info = ort_page.evaluate("() => window.intab.info")
    assert info["backend"] == "wasm" and info["kernel"] == "ort" and info["kernelReason"] == "requested"
    assert info["ortBundle"] == "ort.wasm.min.mjs" and info["memory"] == "fast"
    assert ort_page.get_attribute("#status", "data-kernel") == "ort"
    threads = info["threads"]
    assert f"WASM (onnxruntime), {threads} thread" in ort_page.inner_text("#status")
    assert "kernel: ort (requested)" in ort_page.get_attribute("#status", "title")


@pytest.mark.parametrize("case", ORT_CASES, ids=[c["name"] for c in ORT_CASES])
def test_golden_greedy_wasm_onnxruntime(ort_page, golden, case):
    assert ort_page.evaluate("() => window.intab.info.kernel") == "ort"
    check_golden(run_golden_case(ort_page, case, golden["max_new_tokens"]), case, golden["max_new_tokens"])


def test_not_isolated_page_runs_the_intab_kernel_on_one_thread(browser, serve, static_root, golden):
    url = serve(static_root, isolated=False)
    ctx = browser.new_context()
    requested: list[str] = []

    def seen(r):
        if r.service_worker is None:  # not the service worker's, which keeps both kernels for offline use
            requested.append(r.url)

    ctx.on("request", seen)
    try:
        page = open_app(ctx, url)  # automatic choice, as a visitor of such a host gets
        assert page.evaluate("() => self.crossOriginIsolated") is False
        info = page.evaluate("() => window.intab.info")
        assert info["crossOriginIsolated"] is False
        assert (info["backend"], info["kernel"], info["threads"]) == ("wasm", "intab", 1)
        assert page.get_attribute("#status", "data-threads") == "1"
        assert "WASM, 1 thread" in page.inner_text("#status")
        kernels = [u.rsplit("/", 1)[1] for u in requested if "/kernel/" in u and u.endswith(".wasm")]
        assert kernels == ["decoder-st.wasm"], kernels
        case = next(c for c in GOLDEN_CASES if c["name"] == "capital")
        check_golden(run_golden_case(page, case, golden["max_new_tokens"]), case, golden["max_new_tokens"])
    finally:
        ctx.close()


def test_unknown_kernel_is_an_error_naming_the_valid_values(browser, app_url):
    ctx = browser.new_context()
    try:
        page, err = open_failing(ctx, app_url + "?kernel=bogus")
        assert "BackendError" in err and "kernel='bogus' is invalid" in err, err
        assert "'auto', 'intab' or 'ort'" in err, err
        assert page.is_disabled("#send")
    finally:
        ctx.close()


def test_a_manifest_without_roles_falls_back_to_onnxruntime(browser, static_root, golden):
    """A model built before the kernel (its weights layout names no roles) still loads: the
    automatic choice takes onnxruntime-web, says why, fetches model.onnx for it, and answers."""
    import json

    from fault_server import Faults, start_fault_server

    index = json.loads((static_root / "models" / "index.json").read_text())
    model_id = index["models"][0] if isinstance(index["models"][0], str) else index["models"][0]["id"]
    path = f"models/{model_id}/manifest.json"
    manifest = json.loads((static_root / path).read_text())
    for t in manifest["weights"]["tensors"]:
        t.pop("role", None)
    faults = Faults()
    faults.replace[path] = json.dumps(manifest).encode()
    url = start_fault_server(static_root, faults)
    ctx = browser.new_context()
    requested: list[str] = []
    ctx.on("request", lambda r: requested.append(r.url) if r.service_worker is None else None)
    try:
        page = open_app(ctx, url + "?backend=wasm")
        info = page.evaluate("() => window.intab.info")
        assert (info["backend"], info["kernel"]) == ("wasm", "ort")
        assert "no packed weights layout with roles" in info["kernelReason"]
        assert any(u.endswith("/model.onnx") for u in requested)
        case = next(c for c in GOLDEN_CASES if c["name"] == "capital")
        check_golden(run_golden_case(page, case, golden["max_new_tokens"]), case, golden["max_new_tokens"])
    finally:
        ctx.close()
        faults.stop()
