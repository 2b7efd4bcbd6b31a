"""<intab-chat> embedded in a page that is not intab's, with the real model (issue 10.9): another
server on another port (host_server.py, not web/serve.py), intab's static/ copied under
/lib/intab/, the strict host CSP, the host's own theme. The page creates one engine and hands it
to two elements: one worker, two conversations, both answers golden, nothing refused by the CSP,
no request off the origin. The same host without COOP/COEP runs the model on one thread, and
the element's status line says so.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from host_server import STRICT_CSP, make_host_root, start_host
from test_app import GOLDEN_CASES

CASES = {c["name"]: c for c in GOLDEN_CASES}


@pytest.fixture(scope="module")
def host_root(static_root, tmp_path_factory):
    return make_host_root(tmp_path_factory.mktemp("host"), static_root)


def chat_state(page, el):
    return page.evaluate("(id) => document.getElementById(id).state", el)


def open_host(browser, url):
    ctx = browser.new_context()
    requests: list[str] = []
    ctx.on("request", lambda r: requests.append(r.url))
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => ['a', 'b'].every((id) => ['ready', 'error'].includes(document.getElementById(id).state))",
                           timeout=240_000)
    for el in ("a", "b"):
        assert chat_state(page, el) == "ready", page.inner_text(f"#{el} #error")
    return ctx, page, requests, errors


def ask(page, el, text):
    page.fill(f"#{el} #prompt", text)
    page.press(f"#{el} #prompt", "Enter")


def finished(page, el):
    return page.evaluate("""(id) => [...document.getElementById(id).shadowRoot.querySelectorAll('.msg.assistant[data-finish-reason]')]
        .map((m) => ({ ids: JSON.parse(m.dataset.tokenIds), reason: m.dataset.finishReason }))""", el)


def test_two_elements_share_one_engine_under_the_strict_csp(browser, host_root, golden):
    url, stop = start_host(host_root, isolated=True, csp=STRICT_CSP)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    try:
        ctx, page, requests, errors = open_host(browser, url)
        try:
            assert page.evaluate("() => self.crossOriginIsolated") is True
            assert page.evaluate("() => document.getElementById('a').engine === document.getElementById('b').engine")
            engines = [w.url for w in page.workers if w.url.endswith("/worker.mjs")]
            assert len(engines) == 1, page.workers   # one engine worker for both elements
            info = page.evaluate("() => document.getElementById('a').info")
            assert info["threads"] > 1 and info["crossOriginIsolated"] is True
            assert page.inner_text("#a #status").startswith(f"WASM, {info['threads']} threads")
            # Both at once: they queue on the one engine, and each gets its own answer.
            ask(page, "a", CASES["capital"]["messages"][-1]["content"])
            ask(page, "b", CASES["code_python"]["messages"][-1]["content"])
            page.wait_for_function("""() => ['a', 'b'].every((id) =>
                document.getElementById(id).shadowRoot.querySelectorAll('.msg.assistant[data-finish-reason]').length === 1)""",
                                   timeout=300_000)
            for el, name in (("a", "capital"), ("b", "code_python")):
                (ans,) = finished(page, el)
                assert ans["ids"] == CASES[name]["output_ids"], (el, name)
                msgs = page.evaluate("(id) => document.getElementById(id).messages", el)
                assert msgs == [CASES[name]["messages"][-1], {"role": "assistant", "content": CASES[name]["output_text"]}]
            # The code answer is rendered as Markdown: a code block, as text.
            code = page.inner_text("#b .msg.assistant pre code.language-python")
            assert code.startswith("def fibonacci(n):")
            log = page.evaluate("() => window.hostLog")
            assert log["violations"] == [], log["violations"]
            msgs = [e for e in log["events"] if e["type"] == "intab-message"]
            assert [(e["id"], e["detail"]["message"]["role"]) for e in msgs if e["id"] == "a"] == [("a", "user"), ("a", "assistant")]
            assert [e for e in log["events"] if e["type"] == "intab-error"] == []
            assert errors == []
            foreign = [u for u in requests if not u.startswith(origin + "/")]
            assert foreign == [], foreign
            # The host's theme reached inside: ::part() and --intab-* properties.
            assert page.evaluate("""() => getComputedStyle(document.getElementById('a').shadowRoot.getElementById('send')).fontWeight""") == "700"
            assert page.evaluate("""() => getComputedStyle(document.getElementById('a').shadowRoot.getElementById('send')).backgroundColor""") == "rgb(122, 59, 0)"
            check_the_api(page)
        finally:
            ctx.close()
    finally:
        stop()


def test_host_without_isolation_runs_one_thread_and_says_so(browser, host_root):
    url, stop = start_host(host_root, isolated=False, csp=STRICT_CSP)
    try:
        ctx, page, requests, errors = open_host(browser, url)
        try:
            assert page.evaluate("() => self.crossOriginIsolated") is False
            info = page.evaluate("() => document.getElementById('a').info")
            assert (info["backend"], info["threads"], info["crossOriginIsolated"]) == ("wasm", 1, False)
            status = page.inner_text("#a #status")
            assert "WASM, 1 thread (page not cross-origin isolated)" in status, status
            assert "not cross-origin isolated" in page.get_attribute("#a #status", "title")
            assert any(u.endswith("/kernel/decoder-st.wasm") for u in requests)
            ask(page, "a", CASES["capital"]["messages"][-1]["content"])
            page.wait_for_function("""() => document.getElementById('a').shadowRoot
                .querySelectorAll('.msg.assistant[data-finish-reason]').length === 1""", timeout=300_000)
            (ans,) = finished(page, "a")
            assert ans["ids"] == CASES["capital"]["output_ids"]
            assert page.evaluate("() => window.hostLog.violations") == []
            assert errors == []
        finally:
            ctx.close()
    finally:
        stop()


API_CHECKS = """async () => {
    const a = document.getElementById('a'), b = document.getElementById('b');
    const out = {};
    const settle = async (p) => { try { return ['resolved', await p]; } catch (e) { return [e.name, e.param ?? null, e.hint || null]; } };
    out.empty = await settle(a.send('   '));
    a.setAttribute('temperature', 'warm');
    const seen = [];
    a.addEventListener('intab-error', (e) => seen.push(e.detail), { once: true });
    out.bad = await settle(a.send('Hi'));
    out.badEvent = seen[0];
    out.badShown = a.shadowRoot.getElementById('error').textContent;
    out.afterBad = a.messages.length;
    a.setAttribute('temperature', '0');
    a.setAttribute('context-overflow', 'bogus');
    out.overflow = await settle(a.send('Hi'));
    a.setAttribute('context-overflow', 'drop_oldest');
    b.setAttribute('max-tokens', '300');
    const long = b.send('Write a long story about a dragon who learns to bake bread.');
    await new Promise((r) => setTimeout(r, 0));
    out.busy = await settle(b.send('again'));
    await new Promise((r) => { const t = setInterval(() => {
        if ((b.shadowRoot.querySelector('.msg.streaming .content')?.textContent || '').length > 10) { clearInterval(t); r(); } }, 20); });
    b.stop();
    const r = await long;
    out.stopped = [r.finish_reason, r.message.content.length, b.messages.length];
    const next = await a.send('What is the capital of France?');
    out.next = [next.finish_reason, next.message.content, a.shadowRoot.getElementById('error').hidden];
    a.clear();
    out.cleared = [a.messages.length, a.shadowRoot.querySelectorAll('.msg').length, a.state];
    return out;
}"""


def check_the_api(page):
    """send() / stop() / clear() and the typed errors, from a script (same page, same engine)."""
    out = page.evaluate(API_CHECKS)
    assert out["empty"][:2] == ["InvalidParameter", "text"]
    assert out["bad"][:2] == ["InvalidParameter", "temperature"] and out["bad"][2], out["bad"]
    assert out["badEvent"]["name"] == "InvalidParameter" and out["badEvent"]["param"] == "temperature"
    assert out["badEvent"]["hint"] and out["badEvent"]["fatal"] is False
    assert "temperature='warm' is not a number" in out["badShown"]
    assert out["afterBad"] == 2                      # the refused message changed nothing
    assert out["overflow"][:2] == ["InvalidParameter", "context_overflow"], out["overflow"]   # the engine's check
    assert out["busy"][0] == "InvalidStateError"
    assert out["stopped"][0] == "abort" and out["stopped"][1] > 0 and out["stopped"][2] == 4
    assert out["next"][0] == "stop" and "Paris" in out["next"][1] and out["next"][2] is True
    assert out["cleared"] == [0, 0, "ready"]


OWN_PAGE = {
    "index.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>One chat</title><link rel="icon" href="data:,">
<script type="module" src="./lib/intab/element.mjs"></script></head>
<body><main><h1>One chat</h1><intab-chat id="a" temperature="0" max-tokens="16"></intab-chat></main></body></html>
""",
}


def test_changing_the_kernel_attribute_loads_that_engine_and_keeps_the_conversation(browser, static_root, tmp_path):
    """An element that made its own engine: kernel="ort" loads onnxruntime-web in its place (the
    old engine's worker ends), the conversation stays, and the next answer is still golden."""
    root = make_host_root(tmp_path, static_root, pages=OWN_PAGE)
    url, stop = start_host(root, isolated=True, csp=STRICT_CSP)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(url + "index.html")
        page.wait_for_function("() => document.getElementById('a').state === 'ready'", timeout=240_000)
        assert page.evaluate("() => document.getElementById('a').info.kernel") == "intab"
        ask(page, "a", CASES["capital"]["messages"][-1]["content"])
        page.wait_for_function("() => document.getElementById('a').messages.length === 2", timeout=120_000)
        page.evaluate("() => document.getElementById('a').setAttribute('kernel', 'ort')")
        page.wait_for_function("() => document.getElementById('a').state === 'loading'", timeout=10_000)
        page.wait_for_function("() => document.getElementById('a').state === 'ready'", timeout=240_000)
        info = page.evaluate("() => document.getElementById('a').info")
        assert (info["kernel"], info["kernelReason"]) == ("ort", "requested")
        assert "WASM (onnxruntime)" in page.inner_text("#a #status")
        assert len([w for w in page.workers if w.url.endswith("/worker.mjs")]) == 1   # the old one ended
        assert page.evaluate("() => document.getElementById('a').messages.length") == 2
        assert page.locator("#a .msg").count() == 2
        page.evaluate("() => { document.getElementById('a').messages = []; }")
        ask(page, "a", CASES["capital"]["messages"][-1]["content"])
        page.wait_for_function("""() => document.getElementById('a').shadowRoot
            .querySelectorAll('.msg.assistant[data-finish-reason]').length === 1""", timeout=300_000)
        (ans,) = finished(page, "a")
        assert ans["ids"] == CASES["capital"]["output_ids"]
    finally:
        ctx.close()
        stop()
