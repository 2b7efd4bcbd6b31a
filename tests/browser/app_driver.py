"""Driving web/index.html the way a user does (Playwright, sync API).

The chat is <intab-chat> (web/element.mjs): its controls and log are in its open shadow root.
Playwright's CSS selectors ("#prompt", "#log .msg") pierce open shadow roots; code run in the
page reaches them through CHAT, the element's shadow root (document.getElementById does not).
The settings panel and the body's data-state are the page's own (light DOM).

Under the page's CSP (no 'unsafe-eval'), Playwright's string *expressions* are refused:
every evaluate / wait_for_function below passes a function ("() => ...").
"""
from __future__ import annotations

import time
from dataclasses import dataclass

LOAD_TIMEOUT_MS = 240_000
# The element's shadow root, in code evaluated in the page.
CHAT = "document.querySelector('intab-chat').shadowRoot"
FINISHED = f"{CHAT}.querySelectorAll('#log .msg.assistant[data-finish-reason]')"


@dataclass
class Answer:
    text: str
    token_ids: list[int]
    finish_reason: str
    tok_s: float
    ttft_ms: float
    seconds: float


def open_app(context, url: str, timeout_ms: int = LOAD_TIMEOUT_MS):
    """A page of the app, waited until the engine is ready (or fails with the page's error)."""
    page = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.intab_console = console
    page.goto(url)
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=timeout_ms)
    state = page.evaluate("() => document.body.dataset.state")
    if state != "ready":
        raise AssertionError(f"the app did not load: {page.inner_text('#error')} {errors}")
    page.intab_errors = errors
    return page


def open_failing(context, url: str, timeout_ms: int = 120_000):
    """A page of the app that must not load: waited until it shows its error; (page, error text)."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.state === 'error'", timeout=timeout_ms)
    return page, error_text(page)


def state(page) -> str:
    return page.evaluate("() => document.body.dataset.state")


def error_text(page) -> str:
    return page.inner_text("#error") if page.is_visible("#error") else ""


def open_settings(page) -> None:
    if not page.evaluate("() => document.getElementById('settings').open"):
        page.click("#settings summary")


def set_settings(page, **values) -> None:
    """Fill the settings panel: temperature, top_p, top_k, max_tokens, seed, system_prompt (str or number)."""
    ids = {"temperature": "#temperature", "top_p": "#top-p", "top_k": "#top-k", "max_tokens": "#max-tokens",
           "seed": "#seed", "system_prompt": "#system-prompt"}
    open_settings(page)
    for key, value in values.items():
        page.fill(ids[key], "" if value is None else str(value))


def restore_defaults(page) -> None:
    open_settings(page)
    page.click("#defaults")
    page.fill("#system-prompt", "")


def new_chat(page) -> None:
    page.click("#new-chat")
    page.wait_for_function(f"() => {CHAT}.querySelectorAll('#log .msg').length === 0")


def answers(page) -> int:
    return page.evaluate(f"() => {FINISHED}.length")


def send(page, text: str) -> int:
    """Type a message and press Enter; returns how many finished answers there were before."""
    before = answers(page)
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    return before


def wait_answer(page, before: int, timeout_ms: int = 300_000) -> Answer:
    """Wait for answer number before+1 (or an error line); return it as shown by the page."""
    t0 = time.time()
    page.wait_for_function(
        f"""(n) => {FINISHED}.length > n
                 || (!{CHAT}.getElementById('error').hidden && document.body.dataset.state !== 'generating')""",
        arg=before, timeout=timeout_ms)
    if answers(page) <= before:
        raise AssertionError(f"no answer, the page shows an error: {error_text(page)}")
    # The answer's text as the model wrote it (the log shows it rendered as Markdown): the last
    # assistant message of the element's conversation, which is the last finished answer shown.
    d = page.evaluate(f"""() => {{
        const els = {FINISHED};
        const el = els[els.length - 1];
        const msgs = document.querySelector('intab-chat').messages.filter((m) => m.role === 'assistant');
        return {{ text: msgs[msgs.length - 1].content, ids: el.dataset.tokenIds,
                 reason: el.dataset.finishReason, tokS: el.dataset.tokS, ttft: el.dataset.ttftMs }};
    }}""")
    import json
    return Answer(d["text"], json.loads(d["ids"]), d["reason"], float(d["tokS"]), float(d["ttft"]), time.time() - t0)


def chat(page, text: str, timeout_ms: int = 300_000) -> Answer:
    return wait_answer(page, send(page, text), timeout_ms)
