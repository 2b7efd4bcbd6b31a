"""The whole app on WebGPU (Chromium's SwiftShader adapter, CPU-emulated): golden greedy tokens
through the UI.

SwiftShader is slow on these 2-core machines (measured with the fp32 SmolLM2 graph and the JSPI
build of onnxruntime-web's WebGPU EP: session 9 s, a 37-token prefill ~90 s, then ~20 s per
decoded token), so only the shortest golden case runs here: 'capital' (37 prompt tokens,
8 output tokens, ~4-5 minutes). The full golden set runs on WASM (test_app.py); the bridge
itself is checked on WebGPU against onnxruntime on the CPU in test_bridge.py. Set
INTAB_WEBGPU_CASES=all (or a comma-separated list of case names) to run more on a real GPU.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app_driver import open_app, open_failing
from test_app import run_golden_case

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "golden" / "smollm2-135m-instruct.greedy.json"
CASES = json.loads(GOLDEN_PATH.read_text())["cases"] if GOLDEN_PATH.exists() else []
WANTED = os.environ.get("INTAB_WEBGPU_CASES", "capital")
SELECTED = [c for c in CASES if WANTED == "all" or c["name"] in WANTED.split(",")]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def webgpu_adapter(webgpu_browser, app_url):
    """Skips unless this Chromium gives a WebGPU adapter."""
    ctx = webgpu_browser.new_context()
    page = ctx.new_page()
    try:
        has_adapter = page.goto(app_url + "style.css") and page.evaluate(
            "async () => !!(navigator.gpu && await navigator.gpu.requestAdapter())")
    finally:
        ctx.close()
    if not has_adapter:
        pytest.skip("this Chromium gives no WebGPU adapter")


@pytest.fixture(scope="module")
def webgpu_page(webgpu_adapter, webgpu_browser, app_url):
    ctx = webgpu_browser.new_context()
    page = open_app(ctx, app_url + "?backend=webgpu", timeout_ms=600_000)
    yield page
    ctx.close()


def test_webgpu_status(webgpu_page):
    assert webgpu_page.get_attribute("#status", "data-backend") == "webgpu"
    assert webgpu_page.inner_text("#status").startswith("WebGPU")
    info = webgpu_page.evaluate("() => window.intab.info")
    assert info["backendReason"] == "requested" and info["threads"] == 1
    assert info["kernel"] == "ort" and webgpu_page.get_attribute("#status", "data-kernel") == "ort"
    assert info["ortBundle"] == "ort.jspi.min.mjs"  # Chromium has WebAssembly JSPI


def test_automatic_choice_skips_a_software_adapter(webgpu_page, webgpu_browser, app_url):
    """SwiftShader is seconds per token: left alone, the page picks WASM over it."""
    info = webgpu_page.evaluate("() => window.intab.info")
    if not info["adapterInfo"]["isFallbackAdapter"]:
        pytest.skip("this WebGPU adapter is real hardware")
    ctx = webgpu_browser.new_context()
    try:
        page = open_app(ctx, app_url)
        auto = page.evaluate("() => window.intab.info")
        assert auto["backend"] == "wasm" and "software" in auto["backendReason"]
        assert auto["kernel"] == "intab"
        assert auto["adapterInfo"]["isFallbackAdapter"] is True
    finally:
        ctx.close()


def test_intab_kernel_on_webgpu_is_an_error(webgpu_adapter, webgpu_browser, app_url):
    """The intab kernel is WASM code: asking for it with the WebGPU backend names the fix."""
    ctx = webgpu_browser.new_context()
    try:
        _, err = open_failing(ctx, app_url + "?backend=webgpu&kernel=intab")
        assert "BackendError" in err and "kernel='intab' runs on WASM only" in err, err
        assert "?backend=wasm" in err, err
    finally:
        ctx.close()


@pytest.mark.parametrize("case", SELECTED, ids=[c["name"] for c in SELECTED])
def test_golden_greedy_webgpu(webgpu_page, golden, case):
    ans = run_golden_case(webgpu_page, case, golden["max_new_tokens"], timeout_ms=1_200_000)
    assert ans.token_ids == case["output_ids"]
    assert ans.text == case["output_text"]
