"""intab's Python API in real Python hosts in Chromium (issue 12), offline: a plain Pyodide page, a
PyScript page and the JupyterLite site build.py builds. Each installs the intab wheel from the
site with micropip (piplite in JupyterLite), loads the real model and answers; every request
the browser makes is recorded, and none may leave the site's origin. The greedy answer equals the
golden tokens' text (transformers on the same GGUF)."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.slow
LOAD_MS = 240_000


@pytest.fixture(scope="module")
def site(serve, static_root):
    for need in ("py/simple/intab/index.html", "examples/pyodide.html", "jupyterlite/static/pyodide/pyodide-lock.json"):
        if not (static_root / need).exists():
            pytest.skip(f"{static_root / need} is missing: run `python3 build.py build`")
    return serve(static_root)


def _watch(context, site):
    outside: list[str] = []
    context.on("request", lambda r: outside.append(r.url)
               if not r.url.startswith((site, "blob:", "data:")) and not r.url.startswith(site.replace("http", "ws"))
               else None)
    return outside


def _golden_text(golden) -> str:
    return next(c for c in golden["cases"] if c["messages"][0]["content"] == "What is the capital of France?")["output_text"]


@pytest.mark.parametrize("page_name", ["pyodide.html", "pyscript.html"])
def test_page_installs_intab_from_the_site_and_streams_an_answer(browser, site, golden, page_name):
    context = browser.new_context()
    outside = _watch(context, site)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site + "examples/" + page_name)
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=LOAD_MS)
    assert page.evaluate("() => document.body.dataset.state") == "ready", page.inner_text("#status") + str(errors)
    page.click("#ask")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=LOAD_MS)
    answer = page.inner_text("#answer")
    timings = json.loads(page.evaluate("() => document.body.dataset.timings"))
    print(f"\n{page_name}: {timings}")
    context.close()
    assert answer.strip() == _golden_text(golden).strip()
    assert outside == []
    assert not errors


def test_jupyterlite_notebook_cell_runs_intab_offline(browser, site, golden):
    context = browser.new_context()
    outside = _watch(context, site)
    page = context.new_page()
    page.goto(site + "jupyterlite/notebooks/index.html?path=intab.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=LOAD_MS)
    # Run the notebook from its first code cell, cell by cell, as a person does with Shift+Enter.
    page.click(".jp-Notebook .jp-CodeCell >> nth=0")
    cells = page.locator(".jp-Notebook .jp-Cell").count()
    t0 = time.time()
    for _ in range(cells):
        page.keyboard.press("Shift+Enter")
        time.sleep(0.3)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.textContent.includes('install -> first token'))",
        timeout=LOAD_MS)
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    print(f"\nJupyterLite ({time.time() - t0:.1f} s):", [o for o in outputs if "first token" in o])
    text = "\n".join(outputs)
    context.close()
    assert _golden_text(golden).strip() in text
    assert "Traceback" not in text and "Error" not in text.replace("PromptTooLong", "")
    assert outside == []
