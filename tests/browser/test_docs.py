"""The examples of docs/api.md and docs/embedding.md, run as written in Chromium on the real model.

A JS example (a ```js block whose first line is `// example: <name>`) runs as a module next to
intab.mjs; an HTML example (```html, first line `<!-- example: <name> -->`) is a page whose
`./intab/` is intab's folder. Each must finish without an error.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from serve import CSP, IntabHandler, make_server

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```(js|html)\n(.*?)```", re.S)


def examples() -> list[tuple[str, str, str]]:
    out = []
    for doc in ("api.md", "embedding.md"):
        for lang, body in BLOCK.findall((DOCS / doc).read_text()):
            first = body.splitlines()[0]
            m = re.match(r"(?://|<!--) example: ([\w-]+)", first)
            if m:
                out.append((f"{doc}:{m.group(1)}", lang, body))
    return out


class DocsHandler(IntabHandler):
    """web/serve.py's headers; the HTML examples' inline module needs 'unsafe-inline' (the doc says so)."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "content-security-policy":
            value = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
        super().send_header(keyword, value)


@pytest.fixture(scope="module")
def docs_site(static_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("docs-site")
    intab_dir = root / "intab"
    intab_dir.mkdir()
    for p in Path(static_root).iterdir():
        os.symlink(p.resolve(), intab_dir / p.name)
    # api.md's own-gguf example opens SmolLM2's GGUF (the build's source) from beside the page.
    from models.recipes import DEFAULT
    from models.source import fetch_gguf
    gguf = fetch_gguf(DEFAULT, DOCS.parent / ".cache")
    os.symlink(gguf, intab_dir / gguf.name)
    server = make_server(root, "127.0.0.1", 0, handler_class=DocsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_the_docs_have_examples():
    names = [n for n, _, _ in examples()]
    assert {"api.md:chat", "api.md:tools", "api.md:prompt-api", "api.md:webllm", "embedding.md:script-tag"} <= set(names), names


@pytest.mark.parametrize("name,lang,body", examples(), ids=[n for n, _, _ in examples()])
def test_example_runs(browser, docs_site, name, lang, body):
    root, url = docs_site
    slug = re.sub(r"\W", "-", name)
    if lang == "js":
        (root / "intab" / f"ex-{slug}.mjs").write_text(body)
        (root / "intab" / f"run-{slug}.mjs").write_text(
            f"try {{ await import('./ex-{slug}.mjs'); window.exampleDone = 'ok'; }}\n"
            f"catch (e) {{ window.exampleDone = `${{e.name}}: ${{e.message}}`; }}\n")
        (root / "intab" / f"ex-{slug}.html").write_text(
            f'<!doctype html><meta charset=utf-8><title>{name}</title><script type="module" src="run-{slug}.mjs"></script>\n')
        page_url, done = url + f"intab/ex-{slug}.html", "() => window.exampleDone || null"
    else:
        (root / f"ex-{slug}.html").write_text(f"<!doctype html><meta charset=utf-8><title>{name}</title><body>\n{body}</body>\n")
        page_url, done = url + f"ex-{slug}.html", "() => document.body.textContent.trim() || null"
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors, logs = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: logs.append(m.text))
        page.goto(page_url)
        page.wait_for_function(done, timeout=300_000)
        if lang == "js":
            assert page.evaluate("() => window.exampleDone") == "ok"
        assert not errors, errors
        assert logs or lang == "html"   # the examples print what they got
    finally:
        ctx.close()
