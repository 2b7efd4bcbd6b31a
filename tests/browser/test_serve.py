"""web/serve.py and web/assemble.py without a browser: headers, MIME types, lengths, idempotency."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assemble import ORT_FILES, PYODIDE_FILES, assemble_web, write_offline_list

REPO = Path(__file__).resolve().parents[2]


def head(url: str):
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, b""


@pytest.mark.parametrize("path, mime", [
    ("index.html", "text/html"),
    ("app.mjs", "text/javascript"),
    ("worker.mjs", "text/javascript"),
    ("style.css", "text/css"),
    ("vendor/ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
    ("vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("vendor/pyodide/pyodide-lock.json", "application/json"),
])
def test_served_with_type_length_and_isolation(serve, web_only_root, path, mime):
    status, h, body = head(serve(web_only_root) + path)
    assert status == 200
    assert h["Content-Type"].split(";")[0] == mime
    assert int(h["Content-Length"]) == (web_only_root / path).stat().st_size == len(body)
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    assert h["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert h["Cross-Origin-Resource-Policy"] == "same-origin"
    csp = h["Content-Security-Policy"]
    for directive in ("default-src 'self'", "connect-src 'self'", "worker-src 'self'",
                      "script-src 'self' 'wasm-unsafe-eval'"):
        assert directive in csp
    assert "unsafe-eval'" not in csp.replace("'wasm-unsafe-eval'", "")
    assert "blob:" not in csp and "*" not in csp


def test_errors_carry_the_headers_too(serve, web_only_root):
    status, h, _ = head(serve(web_only_root) + "no/such/file.onnx")
    assert status == 404
    assert h["Content-Security-Policy"] and h["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_assemble_copies_only_what_is_used_and_is_idempotent(tmp_path):
    nm = REPO / "node_modules"
    if not (nm / "onnxruntime-web").exists():
        pytest.skip("node_modules missing: npm ci")
    assemble_web(tmp_path, nm)
    ort = sorted(p.name for p in (tmp_path / "vendor" / "ort").iterdir())
    assert ort == sorted(n for names in ORT_FILES.values() for n in names)
    assert not any("jsep" in n or n.endswith(".map") for n in ort)
    assert sorted(p.name for p in (tmp_path / "vendor" / "pyodide").iterdir()) == sorted(PYODIDE_FILES)
    for name in ("index.html", "app.mjs", "worker.mjs", "bridge.mjs", "style.css"):
        assert (tmp_path / name).read_bytes() == (REPO / "web" / name).read_bytes()
    assert not (tmp_path / "serve.py").exists() and not (tmp_path / "assemble.py").exists()
    # Second run: nothing is rewritten (inode times untouched).
    stamps = {p: os.stat(p).st_ctime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assemble_web(tmp_path, nm)
    assert {p: os.stat(p).st_ctime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps
    # A changed source is copied again, and offline.json's version (web/sw.js serves the shell
    # cache first under it) says the shell changed.
    version = json.loads((tmp_path / "offline.json").read_text())["version"]
    victim = tmp_path / "style.css"
    victim.write_text("/* stale */")
    assert write_offline_list(tmp_path)
    assert json.loads((tmp_path / "offline.json").read_text())["version"] != version
    assemble_web(tmp_path, nm)
    assert victim.read_bytes() == (REPO / "web" / "style.css").read_bytes()
    assert json.loads((tmp_path / "offline.json").read_text())["version"] == version
