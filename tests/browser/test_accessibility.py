"""Accessibility of the demo page and of <intab-chat>, in Chromium: axe-core (npm, injected from
node_modules by Playwright; it checks inside open shadow roots) finds no violation, with all of
its rules but the experimental ones, in each state a person sees: loading with per-file
progress, ready with a conversation of Markdown answers (light and dark), an error shown, the
settings open, and the element on a host page. Then the keyboard: the skip link, Enter to send,
Escape to stop, visible focus.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_driver import CHAT, open_app, open_settings, send, set_settings, wait_answer
from host_server import STRICT_CSP, make_host_root, start_host

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

CONVERSATION = [
    {"role": "user", "content": "How do I bake bread? Give me a table and some code."},
    {"role": "assistant", "content": "# Baking bread\n\nYou need:\n\n1. flour\n2. water\n3. salt\n\n"
     "| step | minutes |\n|:--|--:|\n| mix | 10 |\n| rise | 60 |\n\n```python\ndef knead(dough):\n    return dough.fold()\n```\n\n"
     "> Patience is the secret.\n\nMore at [a bakery](https://example.com/bread) or `man bread`."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome. **Enjoy** your _bread_."},
]


def axe_violations(page, url_base: str) -> list[dict]:
    """Inject axe-core as a same-origin script (the page's CSP allows only 'self': the script is
    served by Playwright's routing at a path of the page's origin; the page's context must block
    service workers, whose fetches routing does not see), run it, return the violations."""
    if not AXE.exists():
        pytest.skip("node_modules/axe-core is missing: npm ci")
    path = "__axe__/axe.min.js"
    page.route(f"**/{path}", lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=url_base + path)
    result = page.evaluate("""async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({ target: n.target, summary: n.failureSummary })) }));
    }""")
    return result


def report(violations) -> str:
    return json.dumps(violations, indent=1)[:4000]


# Routing (axe's script) does not see requests a service worker answers: the demo's sw.js is off
# here, which only skips its offline preparation.
NO_SW = {"service_workers": "block"}


@pytest.fixture(scope="module")
def app_page(browser, app_url):
    ctx = browser.new_context(**NO_SW)
    page = open_app(ctx, app_url + "?backend=wasm")
    yield page
    ctx.close()


def test_demo_page_ready_with_a_conversation(app_page, app_url):
    page = app_page
    page.evaluate("(m) => window.intab.setMessages(m)", CONVERSATION)
    v = axe_violations(page, app_url)
    assert v == [], report(v)
    assert page.locator("#log table").count() == 1 and page.locator("#log pre code").count() == 1
    open_settings(page)
    v = axe_violations(page, app_url)
    assert v == [], report(v)


def test_demo_page_with_an_error_shown(app_page, app_url):
    page = app_page
    page.evaluate("() => window.intab.setMessages([])")
    set_settings(page, top_p=2, temperature=0.5, max_tokens=4)
    send(page, "Hello")
    page.wait_for_function(f"() => !{CHAT}.getElementById('error').hidden && document.body.dataset.state === 'ready'")
    v = axe_violations(page, app_url)
    assert v == [], report(v)
    set_settings(page, top_p=1, temperature=0)


def test_demo_page_dark(browser, app_url):
    ctx = browser.new_context(color_scheme="dark", **NO_SW)
    try:
        page = open_app(ctx, app_url + "?backend=wasm")
        page.evaluate("(m) => window.intab.setMessages(m)", CONVERSATION)
        v = axe_violations(page, app_url)
        assert v == [], report(v)
    finally:
        ctx.close()


def test_demo_page_while_loading(browser, static_root):
    """Held half way through the biggest model file: the progress, overall and per file."""
    from fault_server import Faults, start_fault_server

    index = json.loads((static_root / "models" / "index.json").read_text())
    model_id = index["models"][0]
    faults = Faults()
    url = start_fault_server(static_root, faults)
    faults.hold(f"models/{model_id}/weights.bin", 20_000_000)
    ctx = browser.new_context(**NO_SW)
    try:
        page = ctx.new_page()
        page.goto(url + "?backend=wasm")
        assert faults.held.wait(120)
        page.wait_for_function(f"() => {CHAT}.querySelectorAll('#load-files li').length > 0", timeout=60_000)
        assert page.is_visible("#loading")
        v = axe_violations(page, url)
        assert v == [], report(v)
    finally:
        faults.release()
        ctx.close()
        faults.stop()


def test_element_on_a_host_page(browser, static_root, tmp_path_factory):
    root = make_host_root(tmp_path_factory.mktemp("a11y-host"), static_root, with_models=False)
    url, stop = start_host(root, isolated=True, csp=STRICT_CSP)
    ctx = browser.new_context(**NO_SW)
    try:
        page = ctx.new_page()
        page.goto(url + "render.html")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        page.evaluate("(m) => { document.getElementById('chat').messages = m; }", CONVERSATION)
        v = axe_violations(page, url)
        assert v == [], report(v)
        # Roles and names a screen reader relies on.
        assert page.get_attribute("#chat #log", "role") == "log"
        assert page.get_attribute("#chat #log", "aria-label") == "Conversation"
        assert page.get_attribute("#chat #error", "role") == "alert"
        assert page.get_attribute("#chat #status", "role") == "status"
        assert page.get_attribute("#chat #prompt", "aria-label") == "Your message"
    finally:
        ctx.close()
        stop()


def test_keyboard_alone(app_page):
    """Tab to the skip link, into the message box; Enter sends, Escape stops; focus is visible."""
    page = app_page
    page.evaluate("() => window.intab.setMessages([])")
    set_settings(page, temperature=0, top_p=1, max_tokens=300)
    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    page.mouse.click(2, 2)   # the start of sequential focus navigation: the top of the page
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate(f"() => {CHAT}.activeElement?.id") == "prompt"
    outline = page.evaluate(f"() => getComputedStyle({CHAT}.getElementById('prompt')).outlineStyle")
    assert outline == "solid"
    before = page.evaluate(f"() => {CHAT}.querySelectorAll('#log .msg.assistant[data-finish-reason]').length")
    page.keyboard.type("Write a long story about a dragon who learns to bake bread.")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => ({CHAT}.querySelector('#log .msg.assistant.streaming .content')?.textContent || '').length > 20",
                           timeout=120_000)
    assert page.evaluate(f"() => {CHAT}.getElementById('log').getAttribute('aria-busy')") == "true"
    page.keyboard.press("Escape")
    ans = wait_answer(page, before)
    assert ans.finish_reason == "abort"
    # Focus is back in the message box, ready for the next message.
    assert page.evaluate(f"() => {CHAT}.activeElement?.id") == "prompt"
    assert page.evaluate(f"() => {CHAT}.getElementById('log').getAttribute('aria-busy')") == "false"
    # Tab order through the composer: box, Send, (Stop is disabled), New chat.
    page.keyboard.press("Tab")
    assert page.evaluate(f"() => {CHAT}.activeElement?.id") == "send"
    page.keyboard.press("Tab")
    assert page.evaluate(f"() => {CHAT}.activeElement?.id") == "new-chat"
