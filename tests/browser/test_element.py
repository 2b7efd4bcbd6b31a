"""<intab-chat>'s rendering in Chromium, on a host page that is not intab's (host_server.py):
Markdown answers (code blocks, lists, tables), the XSS corpus (xss_corpus.py) with nothing
executed and nothing outside the allowlist, streaming that re-renders only the block being
written, theming through ::part() and --intab-* properties, and the element's structure
(roles, labels, keyboard) without a model.

The corpus runs on two hosts: under the strict CSP (where the test also listens for CSP
violations: a sanitizer that let an inline handler or a style attribute through would show as
one) and with no CSP at all (where such a failure would really run: alert() or window.__pwned).
"""
from __future__ import annotations

import pytest

from host_server import STRICT_CSP, make_host_root, start_host
from xss_corpus import CORPUS, SHOWN_AS_TEXT


@pytest.fixture(scope="module")
def render_hosts(static_root, tmp_path_factory):
    root = make_host_root(tmp_path_factory.mktemp("render-host"), static_root, with_models=False)
    strict, stop_strict = start_host(root, isolated=True, csp=STRICT_CSP)
    open_, stop_open = start_host(root, isolated=False, csp=None)
    yield {"strict": strict, "none": open_}
    stop_strict()
    stop_open()


def open_harness(browser, url):
    ctx = browser.new_context()
    page = ctx.new_page()
    seen = {"dialogs": [], "errors": [], "console": [], "requests": []}

    def on_dialog(d):
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.goto(url + "render.html")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.on("request", lambda r: seen["requests"].append(r.url))   # none from here on
    return ctx, page, seen


@pytest.mark.parametrize("csp", ["strict", "none"])
def test_xss_corpus_renders_nothing_that_runs(browser, render_hosts, csp):
    ctx, page, seen = open_harness(browser, render_hosts[csp])
    try:
        direct = page.evaluate("(items) => window.harness.renderDirect(items)", CORPUS)
        element = page.evaluate("(items) => window.harness.renderInElement(items)", CORPUS)
        # Let anything that would load or fire (onerror of a broken image, autofocus, meta refresh,
        # animations) have its chance.
        page.wait_for_timeout(1500)
        page.mouse.move(200, 200)
        assert direct["problems"] == [], direct["problems"]
        assert element["problems"] == [], element["problems"]
        assert element["messages"] == 2 * len(CORPUS)
        for name, text in SHOWN_AS_TEXT.items():
            assert text in direct["texts"][name], (name, direct["texts"][name])
        assert seen["dialogs"] == []
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => window.harness.violations") == []
        assert seen["errors"] == [] and seen["console"] == [], seen
        assert seen["requests"] == []       # no image, stylesheet, frame or prefetch was loaded
        assert page.url.endswith("render.html")   # no navigation (meta refresh, base, forms)
    finally:
        ctx.close()


def test_markdown_structures(browser, render_hosts):
    ctx, page, _ = open_harness(browser, render_hosts["strict"])
    try:
        cases = [
            ("code", "Here:\n\n```python\nprint('<b>hi</b>')\n```\n\nand `x = 1`."),
            ("lists", "1. one\n2. two\n   - a\n   - b\n\n- [ ] not a checkbox"),
            ("table", "| name | n |\n|:--|--:|\n| a | 1 |\n| b | 22 |"),
            ("heading", "# Title\n\n## Part\n\ntext **bold** _it_ ~~gone~~\nnext line"),
            ("links", "[site](https://example.com) and https://example.org/x."),
            ("ordered", "3. three\n4. four"),
        ]
        page.evaluate("(items) => window.harness.renderDirect(items)", cases)
        box = lambda name: f"#direct [data-case='{name}']"  # noqa: E731
        assert page.inner_text(box("code") + " pre code.language-python") == "print('<b>hi</b>')\n"
        assert page.locator(box("code") + " p code").inner_text() == "x = 1"
        assert page.locator(box("lists") + " ol > li").count() == 2
        assert page.locator(box("lists") + " ol li ul > li").count() == 2
        assert page.locator(box("lists") + " input").count() == 0
        assert page.locator(box("table") + " table thead th").count() == 2
        assert page.locator(box("table") + " tbody tr").count() == 2
        assert page.get_attribute(box("table") + " tbody tr td:nth-child(2)", "class") == "align-right"
        assert page.get_attribute(box("table") + " thead th:nth-child(1)", "class") == "align-left"
        assert page.locator(box("table") + " [style]").count() == 0
        assert page.inner_text(box("heading") + " h2") == "Title"      # '#' is h2: the host has the h1
        assert page.inner_text(box("heading") + " h3") == "Part"
        assert page.locator(box("heading") + " strong").count() == 1 and page.locator(box("heading") + " s").count() == 1
        assert page.locator(box("heading") + " br").count() == 1          # a single newline is a line break
        links = page.locator(box("links") + " a")
        assert links.count() == 2
        for i in range(2):
            assert links.nth(i).get_attribute("target") == "_blank"
            assert links.nth(i).get_attribute("rel") == "noopener noreferrer"
        assert links.nth(1).get_attribute("href") == "https://example.org/x"
        assert page.get_attribute(box("ordered") + " ol", "start") == "3"
    finally:
        ctx.close()


STREAMED = """# Baking bread

Bread needs four things:

1. flour
2. water
3. salt
4. yeast

| step | minutes |
|------|--------:|
| mix | 10 |
| rise | 60 |

```python
def knead(dough, minutes=10):
    for _ in range(minutes):
        dough.fold()
    return dough
```

> A loaf a day keeps the hunger away.

That is **all** there is to it: see https://example.com/bread for more.
"""


def test_streaming_rerenders_only_the_block_being_written(browser, render_hosts):
    ctx, page, _ = open_harness(browser, render_hosts["strict"])
    try:
        for step in (1, 3, 17):
            r = page.evaluate("([t, s]) => window.harness.stream(t, s)", [STREAMED, step])
            print(f"step {step}: {r['updates']} updates, {r['renders']} block renders, {r['blocks']} blocks")
            assert r["streamed"], "the streamed DOM differs from one render of the whole text"
            assert r["finished"] and r["finishRenders"] == 0   # finish() had nothing left to fix
            assert r["problems"] == []
            # Each update rebuilds the block being written (and, when a block ends, the one
            # before it once more): never the whole answer.
            assert r["renders"] <= 2 * r["updates"] + r["blocks"]
        # A reference defined after its use: the link appears at finish() at the latest.
        late = "See [the docs][d].\n\nMore text.\n\nEven more.\n\n[d]: https://example.com/docs"
        r = page.evaluate("([t, s]) => window.harness.stream(t, s)", [late, 2])
        assert r["finished"] and r["problems"] == []
        # Cost per update stays flat as the answer grows: only the last blocks are parsed again.
        long = STREAMED * 12   # ~4.4 kB, ~1,400 tokens
        r = page.evaluate("([t, s]) => window.harness.stream(t, s)", [long, 4])
        print(f"{len(long)} characters in {r['updates']} updates: median {r['medianMs']:.3f} ms, "
              f"worst {r['worstMs']:.2f} ms per update; one full parse {r['fullMs']:.2f} ms")
        assert r["streamed"] and r["finished"]
    finally:
        ctx.close()


def test_the_log_follows_the_answer_unless_the_reader_scrolls_up(browser, render_hosts):
    """With an engine stand-in that streams a long Markdown answer: the log stays at its end as the
    answer grows (measured after each render, not before it), and once the reader scrolls up it
    stays where they are."""
    ctx, page, _ = open_harness(browser, render_hosts["strict"])
    try:
        text = STREAMED * 3
        r = page.evaluate("(t) => window.harness.scrolling(t)", text)
        assert r["finish"] == "stop" and r["overflow"]
        assert r["end"] < 2, r
        assert max(r["samples"][len(r["samples"]) // 4:]) < 120, r["samples"]   # never left behind by more than a line or two
        r = page.evaluate("([t, at]) => window.harness.scrolling(t, at)", [text, 2500])
        assert r["top"] == 0 and r["end"] > 200, r    # left where the reader put it
    finally:
        ctx.close()
