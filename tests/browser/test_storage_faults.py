"""Storage faults (issue 14, item 2), in Chromium with the real model, requests counted on the test
server (fault_server.py): two tabs of one origin loading at once download the model once, a reload
mid-download fetches only the files not yet verified, storage cleared while the page runs, and
model files swapped for garbage (on the server, in the cache).

Each test has its own browser context (its own Cache Storage, IndexedDB and Web Locks) and its own
fault server.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from app_driver import CHAT, chat, error_text, set_settings
from fault_server import Faults, start_fault_server
from test_storage import (biggest, cache_keys, fetched, key_of, model_of, model_requests, notices, wait_ready,
                          wait_settled)


@pytest.fixture()
def site(browser, static_root):
    faults = Faults()
    url = start_fault_server(static_root, faults)
    ctx = browser.new_context()
    model_id, manifest = model_of(static_root)
    yield SimpleNamespace(faults=faults, url=url, app=url + "?backend=wasm", ctx=ctx, model_id=model_id,
                          manifest=manifest, static=static_root)
    ctx.close()
    faults.stop()


def page_of(site):
    """A page that records its uncaught exceptions (page.errors)."""
    page = site.ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def names(files) -> list[str]:
    return sorted(f["name"] for f in files)


def files_done(page, n: int) -> None:
    page.wait_for_function(f"(n) => {CHAT}.querySelectorAll('#load-files li[data-state=done]').length === n",
                           arg=n, timeout=240_000)


def ask(page, question: str = "What is the capital of France?") -> str:
    set_settings(page, temperature=0, max_tokens=12)
    return chat(page, question).text


def test_two_tabs_load_at_once_and_the_model_is_downloaded_once(site):
    faults = site.faults
    big = biggest(site.manifest)
    # Tab A holds the big file part way: it is mid-download, holding the model's lock.
    faults.hold(f"models/{site.model_id}/{big['name']}", min(big["size"] // 4, 20_000_000))
    a = page_of(site)
    a.goto(site.app)
    assert faults.held.wait(180), "the model file was never requested"
    b = page_of(site)
    b.goto(site.app)
    # Tab B shows that it waits for A (the file rows and the line under the bar).
    b.wait_for_function(f"() => {CHAT}.querySelector('#load-files li[data-state=tab]')", timeout=240_000)
    row = b.inner_text(f"#load-files li[data-name='{big['name']}']")
    detail = b.inner_text("#load-detail")
    print(f"tab B while A downloads: {detail!r}; {row!r}")
    assert "another tab" in row and "another tab" in detail, (row, detail)
    faults.release()
    info_a, info_b = wait_ready(a), wait_ready(b)
    requested = model_requests(faults, site.model_id)
    print(f"model file requests, both tabs: {requested}; tab B read from the cache: {info_b['fromCache']}")
    assert sorted(requested) == names(fetched(site.manifest)), requested   # each file once
    assert info_a["fromCache"] == [] and sorted(info_b["fromCache"]) == names(fetched(site.manifest))
    assert notices(b) == [] and a.errors == [] and b.errors == []
    assert "Paris" in ask(b)


def test_reload_mid_download_fetches_only_the_unverified_files(site):
    faults = site.faults
    big = biggest(site.manifest)
    others = [f for f in fetched(site.manifest) if f is not big]
    faults.hold(f"models/{site.model_id}/{big['name']}", min(big["size"] // 4, 20_000_000))
    page = page_of(site)
    page.goto(site.app)
    assert faults.held.wait(180)
    files_done(page, len(others))
    # The verified files are stored in the background: reload once they are all in.
    want = {key_of(site, f) for f in others}
    for _ in range(600):
        if want <= set(cache_keys(page)):
            break
        page.wait_for_timeout(100)
    assert want <= set(cache_keys(page))
    faults.clear_log()
    page.reload()
    faults.release()     # the held response ends (its page is gone)
    info = wait_ready(page)
    requested = model_requests(faults, site.model_id)
    print(f"after a reload mid-download: fetched {requested}, from the cache {info['fromCache']}")
    assert requested == [big["name"]]
    assert sorted(info["fromCache"]) == names(others)
    assert sorted(cache_keys(page)) == sorted(key_of(site, f) for f in fetched(site.manifest))
    assert "Paris" in ask(page)


def test_storage_cleared_while_the_page_runs(site):
    faults = site.faults
    page = page_of(site)
    page.goto(site.app)
    wait_ready(page)
    first = ask(page)
    assert page.evaluate("async () => (await import('/conversation_store.mjs')).conversationKeys()") == ["demo"]
    cdp = site.ctx.new_cdp_session(page)
    cdp.send("Storage.clearDataForOrigin", {"origin": site.url.rstrip("/"), "storageTypes": "all"})
    assert cache_keys(page) == []
    assert page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)") == []
    # The engine keeps answering: its weights are in memory. The conversation store is created
    # again by the next save, with the whole conversation.
    second = chat(page, "And of Italy?").text
    assert second
    page.wait_for_function("async () => ((await (await import('/conversation_store.mjs')).loadConversation('demo'))"
                           "?.messages || []).length === 4", timeout=30_000)
    assert error_text(page) == "" and page.errors == []
    # The next load downloads every file again and checks it; the conversation is back.
    faults.clear_log()
    page.reload()
    info = wait_ready(page)
    assert info["fromCache"] == []
    assert sorted(model_requests(faults, site.model_id)) == names(fetched(site.manifest))
    page.wait_for_function("() => window.intab.messages().length === 4", timeout=30_000)
    assert [m["content"] for m in page.evaluate("() => window.intab.messages()")] == [
        "What is the capital of France?", first, "And of Italy?", second]
    assert notices(page) == [] and page.errors == []


def test_model_file_swapped_for_garbage_on_the_server_then_in_the_cache(site):
    faults = site.faults
    big = biggest(site.manifest)
    path = f"models/{site.model_id}/{big['name']}"
    garbage = bytes((i * 7919 + 13) & 255 for i in range(1 << 16)) * (big["size"] // (1 << 16) + 1)
    faults.replace[path] = garbage[:big["size"]]      # the right size, the wrong bytes
    page = page_of(site)
    page.goto(site.app)
    assert wait_settled(page) == "error"
    err = error_text(page)
    print(f"garbage on the server: {err}")
    assert "IntegrityError" in err and big["name"] in err and "sha256" in err and "Retry" in err, err
    assert not [k for k in cache_keys(page) if f"/{big['name']}?" in k]
    # The server is repaired: Retry loads it.
    del faults.replace[path]
    page.click("#retry")
    wait_ready(page)
    # Garbage in the cache, of the right size: healed by downloading it again, with one notice.
    page.evaluate("""async ([name, key, size]) => {
        const junk = new Uint8Array(size);
        for (let i = 0; i < size; i++) junk[i] = (i * 31 + 7) & 255;
        await (await caches.open(name)).put(key, new Response(junk));
    }""", ["intab-models-v1", key_of(site, big), big["size"]])
    faults.clear_log()
    page.reload()
    info = wait_ready(page)
    lines = notices(page)
    print(f"garbage in the cache: {lines}")
    assert len(lines) == 1 and big["name"] in lines[0] and "sha256" in lines[0], lines
    assert model_requests(faults, site.model_id) == [big["name"]] and big["name"] not in info["fromCache"]
    assert "Paris" in ask(page) and page.errors == []
