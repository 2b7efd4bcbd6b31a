"""Copy the web sources and the runtime files the page needs into static/.

    assemble_web(static, node_modules)

static/
  index.html app.mjs worker.mjs bridge.mjs model_store.mjs style.css sw.js
  offline.json      what the service worker keeps for offline use (the app shell + runtime files,
                    the ORT files per bundle); the page sends it the list once its model is ready
  kernel/           decoder.wasm decoder-st.wasm: intab's own WASM kernel (web/kernel/compile.py)
  vendor/pyodide/   pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json
  vendor/markdown-it/ markdown-it.esm.min.mjs (+ LICENSE): Markdown for <intab-chat>'s answers
  vendor/dompurify/ purify.es.mjs (+ LICENSE, LICENSE-MPL): the sanitizer after it
  vendor/ort/       ort.wasm.min.mjs    + ort-wasm-simd-threaded.{mjs,wasm}           (WASM, 14 MB)
                    ort.jspi.min.mjs    + ort-wasm-simd-threaded.jspi.{mjs,wasm}      (WebGPU, 17 MB)
                    ort.webgpu.min.mjs  + ort-wasm-simd-threaded.asyncify.{mjs,wasm}  (WebGPU without JSPI, 27 MB)

Only what is used is copied, and a page downloads one of the three: the worker imports the ORT
bundle of the backend it picked. WebGPU uses onnxruntime-web's native WebGPU execution
provider; the JSPI build is preferred (smaller, and on Chromium's SwiftShader adapter it created
the session in 9 s vs 25 s and decoded at 18-22 s/token vs 25 s for the asyncify build and 31-39 s
for the JSEP bundle `ort.min.mjs`); the asyncify build serves browsers without
WebAssembly JSPI (`WebAssembly.Suspending`). Idempotent: a file whose size and
mtime are unchanged is not copied again.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parent
sys.path.insert(0, str(WEB.parent))   # the repository root, when run as a script
from web.kernel.compile import BUILDS, compile_kernel  # noqa: E402

KERNEL_FILES = list(BUILDS)
WEB_SUFFIXES = {".html", ".mjs", ".css", ".js"}

PYODIDE_FILES = [
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
]

# The element's libraries (web/markdown.mjs imports them by these paths). Both packages ship a
# one-file ES module without bare imports, so the site needs no bundler and no build step of its
# own: markdown-it 15's browser build (its dist/markdown-it.mjs imports mdurl, uc.micro, entities,
# linkify-it and punycode.js by package name; dist/browser/ has them inlined, minified) and
# DOMPurify's ESM build. Their UMD builds would set a global (window.markdownit, DOMPurify) on
# the host's page, or call the host's AMD define() where it has one.
# Bytes added to a visit: 124,681 + 87,229 (44.3 + 22.8 kB gzipped).
UI_VENDOR = {
    "markdown-it": {"dist/browser/markdown-it.esm.min.mjs": "markdown-it.esm.min.mjs", "LICENSE": "LICENSE"},
    "dompurify": {"dist/purify.es.mjs": "purify.es.mjs", "LICENSE": "LICENSE", "LICENSE-MPL": "LICENSE-MPL"},
}

# The bundle each backend imports, and the emscripten glue + wasm that bundle loads
# (checked by grepping each bundle for the `ort-wasm-simd-threaded*` name it requests).
ORT_FILES = {
    "wasm": ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"],
    "webgpu": [
        "ort.jspi.min.mjs",
        "ort-wasm-simd-threaded.jspi.mjs",
        "ort-wasm-simd-threaded.jspi.wasm",
    ],
    "webgpu-asyncify": [
        "ort.webgpu.min.mjs",
        "ort-wasm-simd-threaded.asyncify.mjs",
        "ort-wasm-simd-threaded.asyncify.wasm",
    ],
}


def _copy_if_changed(src: Path, dst: Path) -> bool:
    """Copy src to dst unless dst already has the same size and mtime. True if copied."""
    if not src.is_file():
        raise FileNotFoundError(f"missing runtime file {src}; run `npm ci` in the repository root")
    st = src.stat()
    try:
        dt = dst.stat()
        if dt.st_size == st.st_size and int(dt.st_mtime) == int(st.st_mtime):
            return False
    except FileNotFoundError:
        pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copy2(src, tmp)  # copy2 keeps the mtime, which the next run compares
    tmp.replace(dst)
    return True


def offline_list(web_files: list[str], version: str = "") -> dict:
    """What the page needs offline besides the model files (model_store.mjs keeps those):
    `files` for every backend, `ort[bundle]` for the ORT bundle the worker picked. `version`
    changes with any shell file (write_offline_list): web/sw.js then drops its copies of them."""
    return {
        "version": version,
        "files": ["./", "offline.json"] + [n for n in web_files if n not in ("sw.js", "index.html")]
        + [f"vendor/pyodide/{n}" for n in PYODIDE_FILES]
        + [f"vendor/{pkg}/{n}" for pkg, files in UI_VENDOR.items() for n in files.values() if n.endswith(".mjs")]
        + ["py/intab-bundle.zip", "py/intab-snapshot.bin.gz", "models/index.json"] + [f"kernel/{n}" for n in KERNEL_FILES],
        "ort": {names[0]: [f"vendor/ort/{n}" for n in names] for names in ORT_FILES.values()},
    }


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


def assemble_web(static: Path, node_modules: Path) -> None:
    static = Path(static)
    node_modules = Path(node_modules)
    static.mkdir(parents=True, exist_ok=True)
    copied = 0
    for src in sorted(WEB.iterdir()):
        if src.is_file() and src.suffix in WEB_SUFFIXES:
            copied += _copy_if_changed(src, static / src.name)
    pyodide = node_modules / "pyodide"
    for name in PYODIDE_FILES:
        copied += _copy_if_changed(pyodide / name, static / "vendor" / "pyodide" / name)
    for pkg, files in UI_VENDOR.items():
        for src, name in files.items():
            copied += _copy_if_changed(node_modules / pkg / src, static / "vendor" / pkg / name)
    ort = node_modules / "onnxruntime-web" / "dist"
    for names in ORT_FILES.values():
        for name in names:
            copied += _copy_if_changed(ort / name, static / "vendor" / "ort" / name)
    compile_kernel(static / "kernel")
    write_offline_list(static)
    return None


def write_offline_list(static: Path) -> bool:
    """static/offline.json, its version over the shell as it is now (build.py writes it again
    after the Python bundle and Pyodide's snapshot). True when it changed."""
    web_files = sorted(src.name for src in WEB.iterdir() if src.is_file() and src.suffix in WEB_SUFFIXES)
    listed = offline_list(web_files)
    listed["version"] = _shell_version(static, listed)
    return _write_if_changed(static / "offline.json", json.dumps(listed, indent=1) + "\n")


def _shell_version(static: Path, listed: dict) -> str:
    """A digest of every shell file web/sw.js serves cache first: the content of files up to
    1 MB (the app's own), name, size and mtime of bigger ones (the vendor runtimes, copied with
    their package's mtime; the Python bundle and snapshot, rewritten only when rebuilt)."""
    h = hashlib.sha256()
    names = [n for n in listed["files"] if n not in ("./", "offline.json") and not n.startswith("models/")]
    names += [n for ns in listed["ort"].values() for n in ns]
    for n in sorted(set(names)):
        p = static / n
        st = p.stat() if p.is_file() else None
        if st is None:
            h.update(f"{n} -\n".encode())
        elif st.st_size <= 1 << 20:
            h.update(f"{n} {hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode())
        else:
            h.update(f"{n} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--static", default=WEB.parent / "static", type=Path)
    ap.add_argument("--node-modules", default=WEB.parent / "node_modules", type=Path)
    a = ap.parse_args()
    assemble_web(a.static, a.node_modules)
