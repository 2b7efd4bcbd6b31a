"""The whole app in Chromium on the WASM backend: golden greedy tokens through the UI, a
sensible answer with the page's defaults, no request leaves the origin, errors and Stop.

No part of the engine is mocked: the page loads the real model through web/worker.mjs,
Python in Pyodide tokenizes, templates and samples, and intab's own WASM kernel (web/kernel,
the default on WASM) runs the model; onnxruntime-web on WASM (?kernel=ort) is in test_kernels.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app_driver import (CHAT, answers, chat, error_text, new_chat, open_app, open_failing, open_settings,
                        restore_defaults, send, set_settings, state, wait_answer)

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "golden" / "smollm2-135m-instruct.greedy.json"
GOLDEN_CASES = json.loads(GOLDEN_PATH.read_text())["cases"] if GOLDEN_PATH.exists() else []


@pytest.fixture(scope="module")
def wasm_context(browser):
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def wasm_page(wasm_context, app_url):
    page = open_app(wasm_context, app_url + "?backend=wasm")
    yield page
    page.close()


def run_golden_case(page, case, max_new_tokens, timeout_ms=300_000):
    """Earlier turns through the page hook, the last user message typed into the UI."""
    msgs = case["messages"]
    assert msgs[-1]["role"] == "user"
    new_chat(page)
    page.evaluate("(m) => window.intab.setMessages(m)", msgs[:-1])
    set_settings(page, temperature=0, max_tokens=max_new_tokens, top_p=1, top_k=0, seed="")
    ans = chat(page, msgs[-1]["content"], timeout_ms)
    earlier = [m for m in msgs[:-1] if m["role"] != "system"]
    sent = page.evaluate("() => window.intab.messages()")
    assert sent[: len(earlier) + 1] == earlier + [msgs[-1]]
    print(f"{case['name']}: {len(ans.token_ids)} tokens, {ans.tok_s:.1f} tok/s, ttft {ans.ttft_ms:.0f} ms, {ans.seconds:.1f} s")
    return ans


def check_golden(ans, case, max_new_tokens):
    """The reference's greedy tokens and text, ending as the reference did (EOS or the limit)."""
    assert ans.token_ids == case["output_ids"]
    assert ans.text == case["output_text"]
    ended_at_eos = len(case["output_ids"]) < max_new_tokens or case["output_ids"][-1] == 2
    assert ans.finish_reason == ("stop" if ended_at_eos else "length")


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c["name"] for c in GOLDEN_CASES])
def test_golden_greedy_wasm(wasm_page, golden, case):
    check_golden(run_golden_case(wasm_page, case, golden["max_new_tokens"]), case, golden["max_new_tokens"])


def test_status_line_names_backend_and_speed(wasm_page):
    status = wasm_page.inner_text("#status")
    threads = int(wasm_page.get_attribute("#status", "data-threads"))
    assert wasm_page.get_attribute("#status", "data-backend") == "wasm"
    assert wasm_page.get_attribute("#status", "data-kernel") == "intab"
    assert f"WASM, {threads} thread" in status and "onnxruntime" not in status
    assert "kernel: intab" in wasm_page.get_attribute("#status", "title")
    info = wasm_page.evaluate("() => window.intab.info")
    assert info["kernel"] == "intab" and info["kernelReason"] and info["threads"] == threads
    assert info["memory"] is None and info["ortBundle"] is None  # onnxruntime's, not the kernel's
    assert threads == min(wasm_page.evaluate("() => navigator.hardwareConcurrency"), 4)
    new_chat(wasm_page)
    set_settings(wasm_page, temperature=0, max_tokens=8)
    ans = chat(wasm_page, "Say hi.")
    assert ans.tok_s > 0 and ans.ttft_ms > 0
    assert "tok/s" in wasm_page.inner_text("#status") and "first token" in wasm_page.inner_text("#status")


def test_capital_of_france_with_default_settings(wasm_page):
    new_chat(wasm_page)
    restore_defaults(wasm_page)
    ans = chat(wasm_page, "What is the capital of France?")
    assert "Paris" in ans.text
    assert ans.finish_reason == "stop"


def test_invalid_setting_shows_error_and_next_chat_works(wasm_page):
    new_chat(wasm_page)
    set_settings(wasm_page, temperature=0.5, top_p=2, max_tokens=16)
    before = send(wasm_page, "Hello there")
    wasm_page.wait_for_function(f"() => !{CHAT}.getElementById('error').hidden")
    wasm_page.wait_for_function("() => document.body.dataset.state === 'ready'")
    err = error_text(wasm_page)
    assert "InvalidParameter" in err and "top_p" in err, err
    assert answers(wasm_page) == before
    assert wasm_page.evaluate("() => window.intab.messages()") == []  # the failed turn is not kept
    set_settings(wasm_page, top_p=0.9, temperature=0, max_tokens=16)
    ans = chat(wasm_page, "What is the capital of France?")
    assert ans.finish_reason in ("stop", "length") and ans.token_ids
    assert "Paris" in ans.text
    assert error_text(wasm_page) == ""


def test_a_conversation_too_long_for_the_context_says_so_and_offers_what_to_do(wasm_page):
    """A conversation past the model's 8,192-token context (one long pasted text, then a question):
    the page names the error and its remedies, and its button lets the oldest turns drop, after
    which the question is answered and the answer says what was left out."""
    new_chat(wasm_page)
    set_settings(wasm_page, temperature=0, max_tokens=16)
    long_text = "The quick brown fox jumps over the lazy dog near the river bank. " * 800   # ~11k tokens
    wasm_page.evaluate("(t) => { document.querySelector('intab-chat').messages = "
                       "[{ role: 'user', content: t }, { role: 'assistant', content: 'A fox and a dog.' }]; }", long_text)
    before = send(wasm_page, "What is the capital of France?")
    wasm_page.wait_for_function(f"() => {CHAT}.getElementById('error').dataset.name === 'PromptTooLong'", timeout=120_000)
    wasm_page.wait_for_function("() => document.body.dataset.state === 'ready'")
    err = error_text(wasm_page)
    assert "context holds 8192" in err and "Start a new chat" in err and "drop" in err, err
    assert answers(wasm_page) == before
    wasm_page.click("#overflow-drop-oldest")
    ans = wait_answer(wasm_page, before, timeout_ms=180_000)
    assert "Paris" in ans.text
    meta = wasm_page.evaluate(f"() => [...{CHAT}.querySelectorAll('#log .msg.assistant .meta')].pop().textContent")
    assert "2 oldest messages no longer fit and were left out" in meta, meta
    assert wasm_page.evaluate("() => document.querySelector('intab-chat').getAttribute('context-overflow')") == "drop_oldest"
    wasm_page.evaluate("() => document.querySelector('intab-chat').removeAttribute('context-overflow')")
    # The other remedy: a new chat, which keeps the unsent text in the box.
    wasm_page.evaluate("(t) => { document.querySelector('intab-chat').messages = [{ role: 'user', content: t }]; }", long_text)
    send(wasm_page, "And of Spain?")
    wasm_page.wait_for_function(f"() => {CHAT}.getElementById('error').dataset.name === 'PromptTooLong'", timeout=120_000)
    wasm_page.click("#overflow-new-chat")
    assert wasm_page.evaluate("() => document.querySelector('intab-chat').messages") == []
    assert error_text(wasm_page) == ""
    assert wasm_page.input_value("#prompt") == "And of Spain?"


def test_stop_mid_stream_then_next_turn(wasm_page):
    new_chat(wasm_page)
    set_settings(wasm_page, temperature=0, top_p=1, max_tokens=400)
    before = send(wasm_page, "Write a long story about a dragon who learns to bake bread.")
    wasm_page.wait_for_function(
        f"() => {{ const c = {CHAT}.querySelector('#log .msg.assistant.streaming .content');"
        "        return c && c.textContent.length > 40; }", timeout=120_000)
    assert state(wasm_page) == "generating"
    assert wasm_page.is_enabled("#stop")
    wasm_page.click("#stop")
    ans = wait_answer(wasm_page, before)
    assert ans.finish_reason == "abort"
    assert 0 < len(ans.token_ids) < 400
    assert not wasm_page.is_enabled("#stop")
    # The next turn continues the conversation (the partial answer is part of it) and works.
    ans2 = chat(wasm_page, "What is the capital of France?")
    assert ans2.finish_reason in ("stop", "length") and ans2.token_ids
    msgs = wasm_page.evaluate("() => window.intab.messages()")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1]["content"] == ans.text


def test_no_request_leaves_the_origin_nor_any_during_a_turn(browser, app_url):
    """Every request from load through two turns (page and workers): same origin, none in a turn."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(app_url))
    ctx = browser.new_context()
    log: list[tuple[str, str]] = []
    phase = {"now": "load"}
    ctx.on("request", lambda r: log.append((phase["now"], r.url)))
    try:
        page = open_app(ctx, app_url)  # automatic backend choice: WASM in this browser
        assert page.get_attribute("#status", "data-backend") == "wasm"
        assert page.get_attribute("#status", "data-kernel") == "intab"
        loaded = [u for _, u in log]
        assert any(u.endswith("/weights.bin") for u in loaded)          # the worker's fetches are seen
        assert not any(u.endswith("/model.onnx") for u in loaded)        # the kernel never reads the graph
        assert any(u.endswith("/kernel/decoder.wasm") for u in loaded)  # isolated: the threaded kernel
        assert not any("/vendor/ort/" in u for u in loaded)              # intab kernel: no onnxruntime-web
        restore_defaults(page)
        set_settings(page, max_tokens=32)
        for text in ("What is the capital of France?", "And of Italy?"):
            page.wait_for_timeout(300)  # let stray requests of the previous phase land first
            phase["now"] = "turn"
            ans = chat(page, text)
            page.wait_for_timeout(300)
            phase["now"] = "between"
            assert ans.token_ids
        assert not [m for m in page.intab_console if "Content Security Policy" in m], page.intab_console
        page.close()
    finally:
        ctx.close()
    foreign = [u for _, u in log if not (u.startswith(origin + "/") or u == origin)]
    assert foreign == [], foreign
    assert [u for p, u in log if p == "turn"] == []


def test_server_headers_isolate_and_restrict(wasm_page, app_url):
    import urllib.request

    with urllib.request.urlopen(app_url) as r:
        h = r.headers
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    assert h["Cross-Origin-Embedder-Policy"] == "require-corp"
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "'unsafe-eval'" not in csp
    assert wasm_page.evaluate("() => self.crossOriginIsolated") is True
    # The CSP is enforced: a fetch to another origin is refused by the browser's policy
    # (a securitypolicyviolation on connect-src), not merely failing on the network.
    port = urlsplit(app_url).port
    verdict = wasm_page.evaluate("""async (port) => {
        const seen = new Promise((res) => document.addEventListener('securitypolicyviolation',
            (e) => res(e.effectiveDirective), { once: true }));
        let sent = true;
        try { await fetch(`http://localhost:${port}/index.html`); } catch (e) { sent = false; }
        return { sent, directive: await Promise.race([seen, new Promise((r) => setTimeout(() => r(null), 2000))]) };
    }""", port)
    assert verdict == {"sent": False, "directive": "connect-src"}


def test_backend_menu_reloads_with_the_choice_and_keeps_other_parameters(browser, app_url):
    """The settings' backend menu reloads the page with ?backend=, keeping the other parameters."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(app_url + "?kernel=ort")
        assert page.input_value("#backend") == "auto"
        open_settings(page)
        with page.expect_navigation():
            page.select_option("#backend", "wasm")
        assert parse_qs(urlsplit(page.url).query) == {"kernel": ["ort"], "backend": ["wasm"]}
        assert page.input_value("#backend") == "wasm"
    finally:
        ctx.close()


def test_page_stays_responsive_while_the_model_works(wasm_page):
    """The engine runs in the worker: the page's main thread keeps ticking during a long prefill."""
    new_chat(wasm_page)
    set_settings(wasm_page, temperature=0, max_tokens=4)
    wasm_page.evaluate("""() => {
        window.__gaps = []; let last = performance.now();
        window.__tick = setInterval(() => { const t = performance.now(); window.__gaps.push(t - last); last = t; }, 20);
    }""")
    long_text = "Summarize: " + " ".join(["The lighthouse keeper climbed the stairs every night."] * 60)
    ans = chat(wasm_page, long_text)
    gaps = wasm_page.evaluate("() => { clearInterval(window.__tick); return window.__gaps; }")
    print(f"ttft {ans.ttft_ms:.0f} ms, longest main-thread gap {max(gaps):.0f} ms")
    # ~650 prompt tokens: a prefill long enough (seconds even on a fast machine) that a page
    # running the model on its main thread would show one gap about as long as the prefill.
    # Relative, not absolute: whatever the machine's speed, no single stall may last half the prefill.
    assert ans.token_ids and len(gaps) > 10
    assert max(gaps) < ans.ttft_ms / 2, f"main thread blocked for {max(gaps):.0f} ms of a {ans.ttft_ms:.0f} ms prefill"


def test_accessible_and_fits_a_narrow_screen(wasm_page):
    page = wasm_page
    unlabeled = page.evaluate(f"""() => [...document.querySelectorAll('input, textarea, select'),
                                         ...{CHAT}.querySelectorAll('input, textarea, select')]
        .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.id)""")
    assert unlabeled == []
    assert page.get_attribute("#log", "aria-live") == "polite"
    assert page.get_attribute("#error", "role") == "alert"
    page.set_viewport_size({"width": 360, "height": 740})
    try:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        for sel in ("#prompt", "#send", "#stop", "#new-chat"):
            box = page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, (sel, box)
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


def test_low_memory_mode_answers_the_same(browser, app_url, golden):
    """?memory=low (no weight pre-packing in onnxruntime, so with ?kernel=ort) gives the
    reference's greedy tokens; an unknown memory mode is a clear error that names the parameter."""
    ctx = browser.new_context()
    try:
        page = open_app(ctx, app_url + "?backend=wasm&kernel=ort&memory=low")
        info = page.evaluate("() => window.intab.info")
        assert info["kernel"] == "ort" and info["kernelReason"] == "requested" and info["memory"] == "low"
        case = next(c for c in golden["cases"] if c["name"] == "capital")
        set_settings(page, temperature=0, max_tokens=golden["max_new_tokens"])
        ans = chat(page, case["messages"][-1]["content"])
        assert ans.token_ids == case["output_ids"]
        _, err = open_failing(ctx, app_url + "?backend=wasm&memory=tiny")
        assert "memory='tiny' is invalid" in err
    finally:
        ctx.close()
