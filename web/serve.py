"""Static server for intab's `static/` folder.

Serves every file with the headers the page needs:
- cross-origin isolation (COOP/COEP/CORP), so onnxruntime-web can use threads
  (SharedArrayBuffer) and `self.crossOriginIsolated` is true;
- a Content-Security-Policy that allows same-origin requests only: nothing the user types
  can leave the tab, even if a script tried;
- correct MIME types for `.mjs` and `.wasm` (streaming wasm compilation needs
  `application/wasm`), and a Content-Length on every file (the page shows download %).

    python3 web/serve.py --root static --port 8000
"""
from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Why each directive (checked in Chromium 156 with Pyodide 314 and onnxruntime-web 1.30):
# - script-src 'self': every script (page, worker, Pyodide, ORT glue) is a same-origin file.
#   'wasm-unsafe-eval' lets WebAssembly.compile/instantiate run (Pyodide, ORT, and the
#   wasm modules Pyodide loads for extension packages). No 'unsafe-eval': Pyodide's boot and
#   onnxruntime-web's WASM and WebGPU paths run without JS eval (see tests/browser).
#   blob: is needed because onnxruntime-web starts its pthread workers from blob URLs when
#   its glue script is not given as a URL (kept harmless: blob: is same-origin content).
# - worker-src 'self' blob:: the module worker, and ORT's pthread workers.
# - connect-src 'self': fetch() of the model files, Pyodide's stdlib and wheels, ORT's wasm.
#   This is what keeps user data inside the tab: no request to any other origin is allowed.
# - style-src 'self': the page has no inline styles; img-src 'self' data: for icons.
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval' blob:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

EXTRA_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class IntabHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
        ".zip": "application/zip",
        ".css": "text/css",
        ".html": "text/html",
        ".map": "application/json",
        "": "application/octet-stream",
    }

    def end_headers(self) -> None:
        for name, value in EXTRA_HEADERS.items():
            self.send_header(name, value)
        # Model files are checked by sha256 in the page; revalidate rather than trust a stale copy.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def guess_type(self, path):  # noqa: D401 - keep the charset off binary types
        ctype = super().guess_type(path)
        if ctype in ("text/javascript", "text/html", "text/css", "application/json"):
            return ctype + "; charset=utf-8"
        return ctype

    def log_message(self, format, *args):  # quiet: only errors
        pass

    def log_error(self, format, *args):
        sys.stderr.write("serve: %s\n" % (format % args))


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threading HTTP server for `root` (not started: call serve_forever())."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; run `python3 build.py build` first")
    handler = functools.partial(IntabHandler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Serve intab's static/ folder (cross-origin isolated).")
    ap.add_argument("--root", default="static", type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", default=8000, type=int)
    args = ap.parse_args(argv)
    server = make_server(args.root, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"intab: serving {args.root.resolve()} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
