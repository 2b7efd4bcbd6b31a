"""Fixtures for the browser tests: Debian Chromium through pytest-playwright, and web/serve.py.

- `browser` (pytest-playwright's, session scope): Chromium without WebGPU, so the page's
  automatic choice falls back to WASM.
- `webgpu_browser`: a second Chromium with --enable-unsafe-webgpu (a SwiftShader adapter on
  machines without a GPU).
- `static_root`: the assembled static/ folder: the lead's `built_static` fixture when it exists,
  else <repo>/static (run `python3 build.py build` first).
- `serve(root, isolated=True)`: start web/serve.py on a free port for a folder (isolated=False:
  the same server without COOP/COEP, like a plain static host); `app_url`: the app's URL.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "web"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import IntabHandler, make_server  # noqa: E402

CHROMIUM = os.environ.get("INTAB_CHROMIUM", "/usr/lib/chromium/chromium")
BASE_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WEBGPU_ARGS = ["--enable-unsafe-webgpu"]


BROWSER_FIXTURES = {"browser", "webgpu_browser", "page", "context"}


def pytest_collection_modifyitems(config, items):
    """Mark every test here that drives Chromium (directly or through a fixture) as `browser`."""
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here and BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set INTAB_CHROMIUM)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": BASE_ARGS}


@pytest.fixture(scope="session")
def webgpu_browser(playwright, browser_type_launch_args):
    args = {**browser_type_launch_args, "args": BASE_ARGS + WEBGPU_ARGS}
    browser = playwright.chromium.launch(**args)
    yield browser
    browser.close()


class NotIsolatedHandler(IntabHandler):
    """web/serve.py's headers less COOP and COEP: the page is not cross-origin isolated (no
    SharedArrayBuffer), as on a static host that does not send them."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() not in ("cross-origin-opener-policy", "cross-origin-embedder-policy"):
            super().send_header(keyword, value)


@pytest.fixture(scope="session")
def serve():
    servers = []

    def start(root: Path, isolated: bool = True) -> str:
        server = make_server(Path(root), "127.0.0.1", 0, handler_class=IntabHandler if isolated else NotIsolatedHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="session")
def static_root(request) -> Path:
    try:
        root = Path(request.getfixturevalue("built_static"))
    except pytest.FixtureLookupError:
        root = REPO / "static"
    for need in ("index.html", "worker.mjs", "models/index.json", "py/intab-bundle.zip"):
        if not (root / need).exists():
            pytest.skip(f"{root / need} is missing: run `python3 build.py build` first")
    return root


@pytest.fixture(scope="session")
def app_url(serve, static_root) -> str:
    return serve(static_root)


@pytest.fixture(scope="session")
def web_only_root(tmp_path_factory) -> Path:
    """web/ sources and the vendor runtime only (no model): for tests of the bridge and server."""
    from assemble import assemble_web

    root = tmp_path_factory.mktemp("web-static")
    assemble_web(root, REPO / "node_modules")
    (root / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>blank</title>\n")
    return root

