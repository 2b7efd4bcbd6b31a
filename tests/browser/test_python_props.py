"""intab's Python API under hypothesis in Pyodide, in Chromium with the real model (issue 14, item
4): random messages, options and schemas through chat, the OpenAI-shaped create, streams left
early, complete, count_tokens and apply_chat_template; each call answers or raises a typed
IntabError, and the engine stays usable (tests/browser/pyprops/props.py says what is checked).

hypothesis and sortedcontainers are the test's wheels (requirements/test.txt's versions, build.py
test_wheels), served by the test server next to the site; the site never carries them. The suite's
budget is PROPS_EXAMPLES examples; `build.py soak` runs a longer one (tools/soak/soak.py).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fault_server import Faults, start_fault_server

HERE = Path(__file__).resolve().parent
PROPS_EXAMPLES = int(os.environ.get("INTAB_PROPS_EXAMPLES", "120"))


def serve_props(static_root: Path) -> tuple[Faults, str]:
    """A test server over static/ that also serves pyprops/ (the page, props.py, the wheels);
    returns (faults, the page's URL without its query)."""
    sys.path.insert(0, str(HERE.parents[1]))
    import build

    faults = Faults()
    for f in (HERE / "pyprops").iterdir():
        if f.is_file():
            faults.replace[f"pyprops/{f.name}"] = f.read_bytes()
    wheels = build.test_wheels()
    for w in wheels:
        faults.replace[f"pyprops/wheels/{w.name}"] = w.read_bytes()
    url = start_fault_server(static_root, faults)
    query = "&".join([f"micropip=micropip-{build.MICROPIP}-py3-none-any.whl"] + [f"wheel=wheels/{w.name}" for w in wheels])
    return faults, f"{url}pyprops/index.html?{query}"


def run_props(context, url: str, examples: int, seed: int = 0, timeout_ms: int = 900_000) -> dict:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}&examples={examples}&seed={seed}")
    page.wait_for_function("() => document.body.dataset.state === 'done'", timeout=timeout_ms)
    report = json.loads(page.evaluate("() => document.body.dataset.report"))
    report["page_errors"] = errors
    page.close()
    return report


def test_python_api_under_hypothesis_answers_or_raises_typed_errors(browser, static_root):
    faults, url = serve_props(static_root)
    context = browser.new_context()
    try:
        report = run_props(context, url, PROPS_EXAMPLES)
    finally:
        context.close()
        faults.stop()
    print(f"\nhypothesis in Pyodide: {report['calls']} calls in {report['seconds']} s; {report['outcomes']}")
    assert "crashed" not in report, report
    assert report["finding"] is None, report["finding"]
    assert report["calls"] >= PROPS_EXAMPLES and report["page_errors"] == []
    answered = sum(n for k, n in report["outcomes"].items() if k.endswith("answered"))
    refused = sum(n for k, n in report["outcomes"].items() if not k.endswith("answered"))
    assert answered and refused, report["outcomes"]      # both sides of the property were reached
