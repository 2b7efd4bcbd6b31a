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

# Why each directive (checked in Chromium 156 with Pyodide 314 and onnxruntime-web 1.30,
# on the WASM and the WebGPU paths):
# - script-src 'self' 'wasm-unsafe-eval': every script (page, worker, Pyodide, the ORT bundle
#   and its emscripten glue, ORT's pthread workers) is a same-origin file, and
#   'wasm-unsafe-eval' allows WebAssembly compilation (Pyodide, ORT). No 'unsafe-eval': Pyodide
#   has eval() calls (emscripten_run_script, JS code Python asks for with `js.eval`) but its
#   boot, the FFI and everything intab does run without them; ORT's threaded build starts its
#   pthread workers from the glue's own URL, not from blob: URLs, so no blob: either.
# - worker-src 'self': the module worker, ORT's pthread workers and the service worker (sw.js,
#   which keeps the app for offline use; what it serves keeps these headers, stored with it).
# - connect-src 'self': fetch() of the model files, the Python bundle, Pyodide's stdlib, ORT's
#   wasm. This is what keeps user data inside the tab: no request to another origin can go out.
# - style-src 'self': no inline styles (the page sets styles only through the CSSOM);
#   img-src 'self' data: for the empty favicon.
# Playwright note: page.evaluate()/wait_for_function() with a string *expression* uses eval and
# is refused under this CSP; pass a function ("() => ...") instead.
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

# Python hosts of other projects that the site also serves (issue 12). PyScript's loader builds
# functions from strings (`Function(...)`): its pages get 'unsafe-eval'. JupyterLite also runs
# inline scripts and styles and blob: workers: its pages get those too. connect-src stays 'self'
# on both, so nothing typed there leaves the tab either.
CSP_PYSCRIPT = CSP.replace("script-src 'self' 'wasm-unsafe-eval'", "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'")
CSP_JUPYTERLITE = CSP.replace(
    "script-src 'self' 'wasm-unsafe-eval'", "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval' 'unsafe-inline' blob:").replace(
    "worker-src 'self'", "worker-src 'self' blob:").replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "img-src 'self' data:", "img-src 'self' data: blob:").replace("font-src 'self'", "font-src 'self' data:")
CSP_BY_PATH = {"/examples/pyscript": CSP_PYSCRIPT, "/jupyterlite/": CSP_JUPYTERLITE}

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
        path = self.path.split("?", 1)[0]
        csp = next((c for prefix, c in CSP_BY_PATH.items() if path.startswith(prefix)), CSP)
        for name, value in EXTRA_HEADERS.items():
            self.send_header(name, csp if name == "Content-Security-Policy" else value)
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


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0,
                handler_class: type[IntabHandler] = IntabHandler) -> ThreadingHTTPServer:
    """A threading HTTP server for `root` (not started: call serve_forever()).
    `handler_class`: IntabHandler or a subclass (the tests' fault injection)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; run `python3 build.py build` first")
    handler = functools.partial(handler_class, directory=str(root))
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
