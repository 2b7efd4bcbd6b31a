"""The privacy audit (issue 14, item 5), in Chromium with the real models.

One context (page, the engine's worker, the service worker: Playwright's context-wide request
events see all three) goes through a load, 20 turns, a switch to the other model (one short turn)
and an offline visit. Every request is recorded with the phase it came in; the page's own privacy
line (web/privacy.mjs) counts the same live, from Resource Timing and `securitypolicyviolation`
events of the page and of the worker. Found: zero requests off the origin, zero requests during a
turn, zero CSP violations, on both records. Then a control: a request to another origin from the
page and one from the worker are refused by the CSP, and the line counts both, so a line that
cannot count would fail here.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from app_driver import CHAT, LOAD_TIMEOUT_MS, chat, error_text, set_settings

TURNS = 20
SMOL = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"


def wait_ready(page) -> dict:
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=LOAD_TIMEOUT_MS)
    assert page.evaluate("() => document.body.dataset.state") == "ready", error_text(page)
    return page.evaluate("() => window.intab.info")


def line(page) -> dict:
    """The privacy line as the page shows it, and its counts."""
    return {"text": page.inner_text("#privacy"), **page.evaluate("() => window.intab.privacy()")}


def assert_clean(page, where: str) -> dict:
    shown = line(page)
    assert shown["offOrigin"] == 0 and shown["duringTurns"] == 0 and shown["violations"] == 0, (where, shown)
    assert shown["requests"] > 0, (where, shown)
    assert "0 requests left this site · 0 during answers · 0 blocked" in shown["text"], shown["text"]
    assert page.get_attribute("#privacy", "data-clean") == "true"
    return shown


def test_no_request_leaves_the_origin_none_during_turns_and_no_violation(browser, app_url):
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(app_url))
    ctx = browser.new_context()
    log: list[tuple[str, str]] = []
    csp: list[str] = []
    phase = {"now": "load"}
    ctx.on("request", lambda r: log.append((phase["now"], r.url)))
    ctx.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    audit: dict[str, dict] = {}

    def turn(page, text: str):
        page.wait_for_timeout(200)   # stray requests of the phase before land in it
        phase["now"] = "turn"
        ans = chat(page, text)
        page.wait_for_timeout(200)
        phase["now"] = "between"
        assert ans.token_ids, text
        return ans

    try:
        page = ctx.new_page()
        page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
        # -- load and 20 turns (SmolLM2, intab's kernel)
        page.goto(app_url + "?backend=wasm")
        info = wait_ready(page)
        assert info["model"]["id"] == SMOL
        loaded = line(page)
        # The worker's requests reach the line (they are not in the page's Resource Timing).
        assert loaded["requests"] >= 10, loaded
        set_settings(page, temperature=0, max_tokens=8)
        for i in range(TURNS):
            turn(page, f"Say a word about the number {i}.")
        assert page.evaluate(f"() => {CHAT}.querySelectorAll('#log .msg.assistant').length") == TURNS
        audit["smol"] = assert_clean(page, "after 20 turns")

        # -- the other model (onnxruntime-web on WASM: slow; one short turn)
        phase["now"] = "switch"
        page.goto(app_url + f"?backend=wasm&model={GEMMA}")
        info = wait_ready(page)
        assert info["model"]["id"] == GEMMA
        # Gemma 3 270M is a base model (no chat template): its turn is a text completion
        # through the element's engine, under the same watch.
        page.wait_for_timeout(200)
        phase["now"] = "turn"
        text = page.evaluate("""async () => (await document.querySelector('intab-chat').engine.completions.create(
            { prompt: 'The capital of France is', max_tokens: 3, temperature: 0 })).choices[0].text""")
        page.wait_for_timeout(200)
        phase["now"] = "between"
        assert text.strip(), text
        audit["gemma"] = assert_clean(page, "after the model switch")

        # -- offline: the service worker serves the app, Cache Storage the model
        phase["now"] = "offline"
        ctx.set_offline(True)
        try:
            page.goto(app_url + "?backend=wasm")
            info = wait_ready(page)
            assert info["model"]["id"] == SMOL
            set_settings(page, temperature=0, max_tokens=8)
            turn(page, "What is the capital of France?")
            audit["offline"] = assert_clean(page, "offline")
        finally:
            ctx.set_offline(False)

        # -- the control: requests to another origin, from the page and from the worker, are
        # refused by the CSP and counted by the line.
        page.evaluate("() => fetch('https://example.com/?q=secret').catch(() => null)")
        worker = next(w for w in page.workers if w.url.endswith("/worker.mjs"))
        worker.evaluate("() => fetch('https://example.com/?q=from-worker').catch(() => null)")
        page.wait_for_function("() => window.intab.privacy().violations >= 2", timeout=10_000)
        shown = line(page)
        assert {v["url"].split("?")[0] for v in shown["violationList"]} == {"https://example.com/"}, shown
        assert page.get_attribute("#privacy", "data-clean") == "false"
        page.close()
    finally:
        ctx.close()

    foreign = [(p, u) for p, u in log if not (u.startswith(origin + "/") or u == origin)]
    assert foreign == [], foreign
    assert [u for p, u in log if p == "turn"] == []
    assert [m for m in csp if "example.com" not in m] == [], csp
    counts = {p: sum(1 for q, _ in log if q == p) for p in ("load", "between", "switch", "offline")}
    print(f"privacy audit: Playwright saw {len(log)} requests {counts}, 0 off the origin, 0 during "
          f"{TURNS + 2} turns, 0 CSP violations; the page's line: " +
          ", ".join(f"{k} {v['requests']} requests / {v['offOrigin']} off / {v['duringTurns']} in turns / {v['violations']} refused"
                    for k, v in audit.items()))
