"""A host site that is not intab's: another server (plain http.server, not web/serve.py), on
another port, with intab's static/ copied under a sub-path and the host's own pages around it.

    root = make_host_root(tmp, static_root, pages=HOST_PAGES)   # pages at /, intab at /lib/intab/
    url = start_host(root, isolated=True)                        # COOP/COEP or not; the strict CSP

The CSP is the one issue 10 asks the element to work under (nothing looser: no 'unsafe-inline'
for styles or scripts, no blob:, no other origin). `csp=None` serves with no CSP at all: the XSS
tests run the corpus there too, so that a sanitizer failure would really execute.
"""
from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STRICT_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
              "img-src 'self' data:; connect-src 'self'; worker-src 'self'")
HOST_PAGES = Path(__file__).resolve().parent / "host"
SUBPATH = "lib/intab"


class HostHandler(SimpleHTTPRequestHandler):
    csp: str | None = STRICT_CSP
    isolated = True
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
        ".json": "application/json", ".css": "text/css", ".html": "text/html", "": "application/octet-stream",
    }

    def end_headers(self) -> None:
        if self.csp:
            self.send_header("Content-Security-Policy", self.csp)
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        pass


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)          # the model is ~100 MB: hard links where the filesystem allows
    except OSError:
        shutil.copy2(src, dst)


def make_host_root(tmp: Path, static_root: Path, pages: Path | dict[str, str] = HOST_PAGES, with_models: bool = True,
                   subpath: str = SUBPATH) -> Path:
    """tmp/ with the host's pages at its top (a folder's files, or {name: text}) and a copy of
    static/ at tmp/<subpath>/."""
    root = Path(tmp)
    if isinstance(pages, dict):
        for name, text in pages.items():
            (root / name).write_text(text)
    else:
        for f in pages.iterdir():
            if f.is_file():
                shutil.copy2(f, root / f.name)
    ignore = None if with_models else shutil.ignore_patterns("models", "ort", "pyodide", "kernel", "py")
    shutil.copytree(static_root, root / subpath, copy_function=_link_or_copy, ignore=ignore, dirs_exist_ok=True)
    return root


def start_host(root: Path, isolated: bool = True, csp: str | None = STRICT_CSP):
    """Serve root on a free port of 127.0.0.1 -> (url, stop)."""
    handler_class = type("Host", (HostHandler,), {"csp": csp, "isolated": isolated})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler_class, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://{host}:{port}/", stop
