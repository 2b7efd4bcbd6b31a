"""Persistence (issue 14, item 3), in Chromium with the real model: the demo's conversation
(<intab-chat persist="demo">) and that of another <intab-chat persist="side"> on the same page
survive a reload (IndexedDB, web/conversation_store.mjs), each under its own key; "Forget
everything" deletes both and the stored model files, and the next visit restores nothing and
downloads the model again."""
from __future__ import annotations

from app_driver import CHAT, chat, open_app, set_settings

SIDE = """async (text) => {
    let side = document.getElementById('side');
    if (!side) {
        side = document.createElement('intab-chat');
        side.id = 'side';
        side.setAttribute('persist', 'side');
        side.setAttribute('shared-engine', '');
        side.setAttribute('temperature', '0');
        side.setAttribute('max-tokens', '8');
        document.querySelector('main').append(side);
        side.engine = document.getElementById('chat').engine;
        await new Promise((r) => setTimeout(r, 300));   // its restore (IndexedDB) has run
    }
    if (text) await side.send(text);
    return side.messages;
}"""


def conversation_keys(page) -> list[str]:
    return page.evaluate("""async () => {
        const dbs = await indexedDB.databases();
        if (!dbs.some((d) => d.name === 'intab-conversations')) return [];
        return (await import('/conversation_store.mjs')).conversationKeys();
    }""")


def model_files_stored(page) -> int:
    return page.evaluate("""async () => {
        let n = 0;
        for (const name of await caches.keys()) if (name.startsWith('intab-models-')) n += (await (await caches.open(name)).keys()).length;
        return n;
    }""")


def test_conversations_survive_a_reload_and_forget_everything_clears_them_and_the_model(browser, app_url):
    ctx = browser.new_context()
    try:
        page = open_app(ctx, app_url + "?backend=wasm")
        set_settings(page, temperature=0, max_tokens=12)
        a1 = chat(page, "What is the capital of France?")
        a2 = chat(page, "And of Italy?")
        side = page.evaluate(SIDE, "Say hello.")
        demo = page.evaluate("() => window.intab.messages()")
        assert [m["content"] for m in demo] == ["What is the capital of France?", a1.text, "And of Italy?", a2.text]
        assert len(side) == 2
        assert sorted(conversation_keys(page)) == ["demo", "side"]

        page.reload()
        page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=240_000)
        page.wait_for_function("() => window.intab.messages().length === 4")
        assert page.evaluate("() => window.intab.messages()") == demo
        shown = page.locator("#chat #log .msg").all_inner_texts()
        assert len(shown) == 4 and "France" in shown[0], shown
        assert page.evaluate(SIDE, None) == side
        # The conversation goes on from where it was.
        a3 = chat(page, "And of Spain?")
        assert page.evaluate("() => window.intab.messages().length") == 6 and a3.token_ids
        assert model_files_stored(page) > 0

        page.click("#forget")
        page.wait_for_function("() => document.body.dataset.forgotten !== undefined")
        assert "Forgotten" in page.inner_text("#forget-done")
        assert page.evaluate("() => window.intab.messages()") == []
        assert page.evaluate(f"() => {CHAT}.querySelectorAll('#log .msg').length") == 0
        assert conversation_keys(page) == []
        assert model_files_stored(page) == 0

        page.reload()
        page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=240_000)
        info = page.evaluate("() => window.intab.info")
        assert info["fromCache"] == [], info["fromCache"]   # downloaded again
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.intab.messages()") == []
        assert page.evaluate(SIDE, None) == []
    finally:
        ctx.close()
