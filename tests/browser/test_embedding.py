"""Embedding for real: intab's static/ loaded by a host page of another origin (a CDN), and a
WebGPU session that fails under backend 'auto' falling back to WASM by itself."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from serve import CSP, IntabHandler, make_server


def start(root: Path, handler: type) -> tuple[str, object]:
    server = make_server(root, "127.0.0.1", 0, handler_class=handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


class CdnHandler(IntabHandler):
    """A static host for intab's files that lets other origins use them (CORS, CORP cross-origin)."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "cross-origin-resource-policy":
            value = "cross-origin"
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()


def host_handler(cdn: str) -> type:
    """The host page's server: cross-origin isolated, its CSP naming the CDN where intab's
    scripts and files come from (and blob: for the worker that imports them)."""
    origin = cdn.rstrip("/")
    csp = (CSP.replace("script-src 'self'", f"script-src 'self' {origin}")
              .replace("worker-src 'self'", f"worker-src 'self' blob: {origin}")
              .replace("connect-src 'self'", f"connect-src 'self' {origin}"))

    class Host(IntabHandler):
        def send_header(self, keyword: str, value: str) -> None:
            super().send_header(keyword, csp if keyword.lower() == "content-security-policy" else value)

    return Host


def test_intab_from_another_origin_runs_in_a_host_page(browser, static_root, tmp_path, golden):
    cdn, cdn_server = start(Path(static_root), CdnHandler)
    host_root = tmp_path / "host"
    host_root.mkdir()
    (host_root / "index.html").write_text('<!doctype html><meta charset=utf-8><title>host</title><script type="module" src="host.mjs"></script>\n')
    case = golden["cases"][0]
    (host_root / "host.mjs").write_text(f"""
import * as intab from '{cdn}intab.mjs';
const engine = await intab.create({{ backend: 'wasm' }});
const r = await engine.chat.completions.create({{ messages: {json.dumps(case['messages'])}, temperature: 0, max_tokens: 64 }});
window.result = {{ ids: r.intab.token_ids, threads: engine.info.threads, kernel: engine.info.kernel, isolated: crossOriginIsolated }};
""")
    host, host_server = start(host_root, host_handler(cdn))
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(host)
        page.wait_for_function("() => window.result || null", timeout=240_000)
        got = page.evaluate("() => window.result")
    finally:
        ctx.close()
        for s in (cdn_server, host_server):
            s.shutdown()
            s.server_close()
    assert not errors, errors
    assert got["isolated"] and got["kernel"] == "intab" and got["threads"] >= 2
    assert got["ids"] == case["output_ids"]


def test_a_failing_webgpu_session_falls_back_to_wasm_under_auto(webgpu_browser, static_root, serve, tmp_path, golden):
    """backend 'auto' on a WebGPU adapter (SwiftShader, allowed with adapter: 'any') whose session
    cannot start — here a model.onnx that is not a model, published with its own sha256 so that
    it passes the integrity check and fails in onnxruntime — ends on WASM, saying why."""
    site = tmp_path / "site"
    site.mkdir()
    for p in Path(static_root).iterdir():
        if p.name != "models":
            os.symlink(p.resolve(), site / p.name)
    model_id = json.loads((Path(static_root) / "models" / "index.json").read_text())["models"][0]
    src = Path(static_root) / "models" / model_id
    dst = site / "models" / model_id
    dst.mkdir(parents=True)
    shutil.copy(Path(static_root) / "models" / "index.json", site / "models" / "index.json")
    for f in src.iterdir():
        os.symlink(f.resolve(), dst / f.name)
    (dst / "model.onnx").unlink()
    broken = b"this is not an ONNX model" * 100
    (dst / "model.onnx").write_bytes(broken)
    manifest = json.loads((src / "manifest.json").read_text())
    for f in manifest["files"]:
        if f["name"] == "model.onnx":
            f.update(size=len(broken), sha256=hashlib.sha256(broken).hexdigest())
    (dst / "manifest.json").unlink()
    (dst / "manifest.json").write_text(json.dumps(manifest))
    (site / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>x</title>\n")
    url = serve(site)
    case = golden["cases"][0]
    ctx = webgpu_browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(url + "blank.html")
        got = page.evaluate("""async (messages) => {
            const intab = await import('/intab.mjs');
            const engine = await intab.create({ backend: 'auto', adapter: 'any' });
            const r = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 64 });
            return { info: { backend: engine.info.backend, backendReason: engine.info.backendReason, fallback: engine.info.fallback,
                             kernel: engine.info.kernel }, ids: r.intab.token_ids };
        }""", case["messages"])
    finally:
        ctx.close()
    info = got["info"]
    assert info["backend"] == "wasm" and info["kernel"] == "intab"
    assert info["fallback"]["from"] == "webgpu" and info["fallback"]["reason"]
    assert info["backendReason"].startswith("WebGPU failed")
    assert got["ids"] == case["output_ids"]
