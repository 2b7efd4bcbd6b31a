"""Faults survived (issue 14, item 2), in Chromium with the real model: the engine's worker killed
in the middle of an answer, as an out-of-memory kill would (it ends with no message and no error
event: the client learns of it through the worker's Web Lock lifeline, web/client.mjs).

The worker is ended from inside (`self.close()`, through Playwright's handle on it): the page has
no hand in it, as with the browser killing a worker that ran out of memory.
"""
from __future__ import annotations

from app_driver import CHAT, open_app, set_settings, wait_answer

Q1 = "What is the capital of France?"
Q2 = "Write a long story about a dragon who learns to fly."


def engine_worker(page):
    return next(w for w in page.workers if w.url.endswith("/worker.mjs"))


def kill_engine_worker(page) -> None:
    engine_worker(page).evaluate("() => self.close()")


def test_worker_killed_mid_answer_restarts_and_the_conversation_goes_on(browser, app_url):
    ctx = browser.new_context()
    try:
        page = open_app(ctx, app_url + "?backend=wasm")
        page.evaluate("""() => {
            window.intabErrors = [];
            document.addEventListener('intab-error', (ev) => window.intabErrors.push(ev.detail));
        }""")
        set_settings(page, temperature=0, max_tokens=160)
        page.fill("#prompt", Q1)
        page.press("#prompt", "Enter")
        a1 = wait_answer(page, 0)
        # The second turn: killed once it has streamed some text.
        page.fill("#prompt", Q2)
        page.press("#prompt", "Enter")
        page.wait_for_function(f"() => ({CHAT}.querySelector('#log .msg.assistant.streaming .content')?.textContent || '').length > 8")
        partial = page.evaluate(f"() => {CHAT}.querySelector('#log .msg.assistant.streaming .content').textContent")
        kill_engine_worker(page)
        # What the user sees: the typed error, then the restarted engine with a notice; the broken
        # turn is back in the message box, marked as not sent; the conversation before it is kept.
        page.wait_for_function("() => window.intabErrors.some((e) => e.name === 'EngineCrashed')", timeout=30_000)
        page.wait_for_function("() => document.body.dataset.state === 'ready' && document.querySelector('intab-chat').state === 'ready'", timeout=240_000)
        err = next(e for e in page.evaluate("() => window.intabErrors") if e["name"] == "EngineCrashed")
        assert "worker ended" in err["message"] and err["hint"], err
        notice = " ".join(page.locator("#notices p").all_inner_texts())
        assert "restarted" in notice and "conversation is kept" in notice, notice
        assert page.input_value("#prompt") == Q2
        assert page.locator("#log .msg.user.failed").count() == 1
        assert page.evaluate("() => window.intab.messages()") == [{"role": "user", "content": Q1}, {"role": "assistant", "content": a1.text}]
        # The conversation goes on: the same turn sent again answers, greedy, as it had begun.
        page.press("#prompt", "Enter")
        a2 = wait_answer(page, 1)
        assert a2.text.startswith(partial.strip()[:8]), (partial, a2.text)
        msgs = page.evaluate("() => window.intab.messages()")
        assert [m["content"] for m in msgs] == [Q1, a1.text, Q2, a2.text]
        print(f"crash: partial {partial!r}; after the restart {a2.text!r}; error {err['name']}: {err['message']}")
    finally:
        ctx.close()


def test_the_api_rejects_with_engine_crashed_then_restarts_with_the_same_answers(browser, app_url):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(app_url + "models/index.json")   # any same-origin document of the site
        page.evaluate("""async () => {
            window.intab = await import('/intab.mjs');
            window.engine = await window.intab.create({ backend: 'wasm' });
            window.events = [];
            for (const t of ['crash', 'restart']) engine.addEventListener(t, (ev) => events.push([t, engine.state]));
            window.ask = () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'Name three colours of the rainbow.' }],
                temperature: 0, max_tokens: 32 }).then((r) => r.choices[0].message.content);
        }""")
        fresh = page.evaluate("() => ask()")
        # Killed while a stream runs: the stream's iteration rejects with EngineCrashed.
        page.evaluate("""() => {
            window.outcome = (async () => {
                const s = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Write a long story about a dragon who learns to fly.' }],
                    temperature: 0, max_tokens: 200, stream: true });
                window.chunks = 0;
                let n = 0;
                try { for await (const c of s) { n += 1; window.chunks = n; } return { n }; }
                catch (e) { return { n, name: e.name, message: e.message, hint: e.hint, typed: e instanceof window.intab.IntabError }; }
            })();
        }""")
        page.wait_for_function("() => window.chunks >= 3")
        kill_engine_worker(page)
        out = page.evaluate("() => window.outcome")
        assert out.get("name") == "EngineCrashed" and out["typed"] and out["hint"], out
        state = page.evaluate("() => engine.state")
        assert state in ("loading", "ready"), state
        page.wait_for_function("() => engine.state === 'ready'", timeout=240_000)
        assert page.evaluate("() => window.events") == [["crash", "crashed"], ["restart", "ready"]]
        assert page.evaluate("() => ask()") == fresh
    finally:
        ctx.close()
