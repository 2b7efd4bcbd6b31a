"""docs/element.md's examples, run as they are: each ```lang example=<dir>/<file> block is
written to a host site of its own with intab's static/ copied to ./intab/, served by another
server under the strict CSP (host_server.py), and used the way a person would: the element loads
(or is given) the engine, and a message typed into it gets an answer."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from host_server import STRICT_CSP, make_host_root, start_host

DOC = Path(__file__).resolve().parents[2] / "docs" / "element.md"
BLOCK = re.compile(r"^```\w+ example=([\w-]+)/([\w.-]+)\n(.*?)^```$", re.M | re.S)


def examples() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for folder, name, text in BLOCK.findall(DOC.read_text()):
        out[folder][name] = text
    return dict(out)


EXAMPLES = examples()


def test_the_doc_has_its_examples():
    assert set(EXAMPLES) == {"drop-in", "shared"}
    assert "index.html" in EXAMPLES["drop-in"] and "chats.mjs" in EXAMPLES["shared"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_doc_example_answers(browser, static_root, tmp_path, name):
    files = EXAMPLES[name]
    for text in files.values():
        for imported in re.findall(r"""['"]\./intab/([\w./-]+)['"]""", text):
            if not (static_root / imported).exists():
                pytest.skip(f"static/{imported} is not built yet (the client, web/client.mjs, has not landed)")
    root = make_host_root(tmp_path, static_root, pages=files, subpath="intab")
    url, stop = start_host(root, isolated=True, csp=STRICT_CSP)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "index.html")
        page.wait_for_function("() => [...document.querySelectorAll('intab-chat')].every((c) => ['ready', 'error'].includes(c.state))",
                               timeout=240_000)
        chats = page.evaluate("() => [...document.querySelectorAll('intab-chat')].map((c) => c.state)")
        assert chats and set(chats) == {"ready"}, page.inner_text("intab-chat #error")
        first = "intab-chat >> nth=0"
        page.locator(first).locator("#prompt").fill("What is the capital of France?")
        page.locator(first).locator("#prompt").press("Enter")
        page.wait_for_function("""() => document.querySelector('intab-chat').shadowRoot
            .querySelectorAll('.msg.assistant[data-finish-reason]').length === 1""", timeout=300_000)
        answer = page.evaluate("() => document.querySelector('intab-chat').messages[1].content")
        assert "Paris" in answer, answer
        assert errors == []
        if "shared-engine" not in files["index.html"]:
            # An element that made its own engine frees it when it leaves the page.
            assert [w for w in page.workers if w.url.endswith("/worker.mjs")]
            page.evaluate("() => document.querySelector('intab-chat').remove()")
            deadline = 50
            while [w for w in page.workers if w.url.endswith("/worker.mjs")] and deadline:
                page.wait_for_timeout(100)
                deadline -= 1
            assert not [w for w in page.workers if w.url.endswith("/worker.mjs")], "the engine's worker is still running"
    finally:
        ctx.close()
        stop()
