"""The JS API fuzzed (issue 14, item 4), in Chromium with the real model: fast-check throws random
messages, options and abort timings at chat.completions.create and completions.create
(tests/browser/fuzz/fuzz.mjs); each call resolves or rejects with a typed error and the engine
stays usable (a greedy probe answers as before). A budget of 60 runs here; `build.py soak` runs
a longer one. Then the fixed edge cases: prompts of 0, 1 and max-context tokens, a 1 MB string,
NUL, lone surrogates."""
from __future__ import annotations

import pytest

from fuzz_site import fuzz_site, open_engine_page

RUNS = 60


@pytest.fixture(scope="module")
def fuzz_page(browser, serve, static_root, tmp_path_factory):
    url = serve(fuzz_site(static_root, tmp_path_factory.mktemp("fuzz-site")))
    ctx = browser.new_context()
    page = ctx.new_page()
    open_engine_page(page, url, fuzzer="fuzz")
    yield page
    ctx.close()


def test_every_call_resolves_or_rejects_typed_and_the_engine_stays_usable(fuzz_page):
    try:
        r = fuzz_page.evaluate("(n) => fuzzer.fuzz(engine, intab.IntabError, { numRuns: n, seed: 14 })", RUNS)
    except Exception:
        print("the last calls:", fuzz_page.evaluate("() => fuzzer.log.slice(-3)"))
        raise
    print(f"fuzz: {r['runs']} runs in {r['seconds']:.1f} s: {r['outcomes']}")
    assert r["runs"] == RUNS
    # The draws reach both sides: answers and typed refusals.
    assert any(k.startswith("resolved") or k.startswith("streamed") for k in r["outcomes"]), r
    assert any(k.startswith("rejected:") for k in r["outcomes"]), r


def test_edge_cases_resolve_or_reject_typed(fuzz_page):
    try:
        r = fuzz_page.evaluate("() => fuzzer.edgeCases(engine, intab.IntabError)")
    except Exception:
        print("the last calls:", fuzz_page.evaluate("() => fuzzer.log.slice(-3)"))
        raise
    print(f"edge cases: {r}")
    ctx = fuzz_page.evaluate("() => engine.info.model.contextWindow")
    assert r["max-context prompt tokens"] == ctx
    assert r["prompt of max-context tokens"].startswith("rejected:"), r   # no room for one new token
    assert r["prompt of 1 token"].startswith("resolved"), r
    assert r["1 MB message"] == "rejected:PromptTooLong", r
    assert r["NUL"].startswith("resolved"), r
    # A lone surrogate cannot become Python text (Pyodide's str is UTF-8): a typed refusal that
    # says so, not a crash; as a stop string it is matched as text and the call answers.
    assert r["lone surrogates"] in ("rejected:TokenizerError", "resolved:length", "resolved:stop"), r
    assert r["stop of lone surrogate"].startswith("resolved"), r
    assert fuzz_page.evaluate("() => engine.state") == "ready"
