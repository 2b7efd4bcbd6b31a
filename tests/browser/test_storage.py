"""Model storage in Chromium (issue 5), with the real model: download progress, the persistent
cache (no model request on a second visit, new versions replace old files, stale files deleted),
self-healing of damaged cache entries, failed downloads and Retry, a full storage quota, and the
whole app offline after one visit.

Faults are injected by a test server (fault_server.py wraps web/serve.py), not by Playwright's
routing, which does not see every request of a dedicated worker or a service worker. The cache
tests share one persistent profile (Playwright's ordinary contexts are incognito-like) and run in
file order; each also works alone (it visits first when needed).
"""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest

from app_driver import CHAT, LOAD_TIMEOUT_MS, chat, error_text, set_settings
from fault_server import Faults, start_fault_server

CACHE = "intab-models-v1"


def model_of(static_root):
    index = json.loads((static_root / "models" / "index.json").read_text())
    model_id = index["models"][0] if isinstance(index, dict) else index[0]
    manifest = json.loads((static_root / "models" / model_id / "manifest.json").read_text())
    return model_id, manifest


def wait_settled(page, timeout_ms: int = LOAD_TIMEOUT_MS) -> str:
    page.wait_for_function("() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=timeout_ms)
    return page.evaluate("() => document.body.dataset.state")


def wait_ready(page) -> dict:
    state = wait_settled(page)
    assert state == "ready", error_text(page)
    return page.evaluate("() => window.intab.info")


def model_requests(faults, model_id) -> list[str]:
    """Requests of model files (not models/index.json nor manifest.json), as file names."""
    prefix = f"models/{model_id}/"
    return [p[len(prefix):] for p in faults.requests(prefix) if not p.endswith("/manifest.json")]


def cache_keys(page) -> list[str]:
    return page.evaluate("async (name) => (await (await caches.open(name)).keys()).map((r) => r.url)", CACHE)


def notices(page) -> list[str]:
    return page.locator("#notices p").all_inner_texts()


def ask_paris(page) -> None:
    set_settings(page, temperature=0, max_tokens=12)
    ans = chat(page, "What is the capital of France?")
    assert "Paris" in ans.text, ans.text


@pytest.fixture(scope="module")
def site(playwright, browser_type_launch_args, static_root, tmp_path_factory):
    """A fault server over static/ and one persistent Chromium profile with a page on it."""
    faults = Faults()
    url = start_fault_server(static_root, faults)
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("profile")), **browser_type_launch_args)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    model_id, manifest = model_of(static_root)
    s = SimpleNamespace(faults=faults, url=url, app=url + "?backend=wasm", ctx=ctx, page=page,
                        model_id=model_id, manifest=manifest, static=static_root, visited=False)
    yield s
    ctx.close()
    faults.stop()


def ensure_visited(site) -> None:
    if not site.visited:
        site.page.goto(site.app)
        wait_ready(site.page)
        site.visited = True


def key_of(site, f) -> str:
    return f"{site.url}models/{site.model_id}/{f['name']}?sha256={f['sha256']}"


def fetched(manifest) -> list[dict]:
    """The manifest's files that the page loads: all but model.onnx, which the intab kernel (the
    WASM default) never reads and so never downloads."""
    return [f for f in manifest["files"] if f["name"] != "model.onnx"]


def biggest(manifest) -> dict:
    return max(manifest["files"], key=lambda f: f["size"])


def test_first_visit_shows_progress_then_second_visit_requests_no_model_file(site):
    page, faults = site.page, site.faults
    big = biggest(site.manifest)
    # Hold the biggest file part way, to look at the progress display in a known state.
    faults.hold(f"models/{site.model_id}/{big['name']}", min(big["size"] // 4, 20_000_000))
    page.goto(site.app)
    assert faults.held.wait(120), "the model file was never requested"
    page.wait_for_function(f"() => {CHAT}.getElementById('load-detail').textContent.includes('left')",
                           timeout=60_000)
    detail = page.inner_text("#load-detail")
    assert " of " in detail and "MB" in detail and "%" in detail, detail
    row = f"#load-files li[data-name='{big['name']}']"
    page.wait_for_function(f"(sel) => ({CHAT}.querySelector(sel)?.textContent || '').includes('left')", arg=row,
                           timeout=60_000)
    assert "%" in page.inner_text(row) and "MB" in page.inner_text(row)
    assert page.locator("#load-files li").count() == len(fetched(site.manifest))
    assert 0 < page.evaluate(f"() => {CHAT}.getElementById('load-bar').value") < 1
    faults.release()
    info = wait_ready(page)
    site.visited = True
    assert info["fromCache"] == []
    assert notices(page) == []
    estimate = page.evaluate("() => navigator.storage.estimate()")
    total = sum(f["size"] for f in fetched(site.manifest))
    print(f"first visit: ready in {info['loadMs']} ms; storage {estimate['usage'] / 1e6:.1f} MB "
          f"(model files {total / 1e6:.1f} MB), details {estimate.get('usageDetails')}")
    assert sorted(cache_keys(page)) == sorted(key_of(site, f) for f in fetched(site.manifest))

    faults.clear_log()
    page.reload()
    info = wait_ready(page)
    print(f"second visit: ready in {info['loadMs']} ms, timings {info['timings']}")
    assert sorted(info["fromCache"]) == sorted(f["name"] for f in fetched(site.manifest))
    assert model_requests(faults, site.model_id) == []
    assert notices(page) == []


def test_new_version_replaces_files_and_stale_ones_are_deleted(site):
    ensure_visited(site)
    page, faults = site.page, site.faults
    # Left-overs: an older version of this model's big file, and a model index.json no longer lists.
    big = biggest(site.manifest)
    planted = [f"{site.url}models/{site.model_id}/{big['name']}?sha256={'0' * 64}",
               f"{site.url}models/retired-model/{big['name']}?sha256={'1' * 64}"]
    page.evaluate("""async ([name, keys]) => {
        const c = await caches.open(name);
        for (const k of keys) await c.put(k, new Response('stale'));
    }""", [CACHE, planted])
    # A new version of the model: config.json changes, and the manifest with it.
    base = f"models/{site.model_id}/"
    old_cfg = (site.static / base / "config.json").read_bytes()
    new_cfg = old_cfg.rstrip() + b"\n\n"
    manifest = json.loads(json.dumps(site.manifest))
    for f in manifest["files"]:
        if f["name"] == "config.json":
            f["size"], f["sha256"] = len(new_cfg), hashlib.sha256(new_cfg).hexdigest()
    manifest["version"] = "test-new-version"
    faults.replace[base + "config.json"] = new_cfg
    faults.replace[base + "manifest.json"] = json.dumps(manifest).encode()
    try:
        faults.clear_log()
        page.reload()
        info = wait_ready(page)
        assert info["model"]["version"] == "test-new-version"
        assert model_requests(faults, site.model_id) == ["config.json"]
        keys = cache_keys(page)
        expected = sorted(f"{site.url}{base}{f['name']}?sha256={f['sha256']}" for f in fetched(manifest))
        assert sorted(keys) == expected, keys
    finally:
        faults.replace.clear()


def test_damaged_cache_entries_are_healed_with_one_notice(site):
    ensure_visited(site)
    page, faults = site.page, site.faults
    big = biggest(site.manifest)
    tok = next(f for f in site.manifest["files"] if f["name"] == "tokenizer.json")
    # The big file's entry truncated to its first KB; tokenizer.json with one bit flipped.
    page.evaluate("""async ([name, bigKey, tokKey]) => {
        const c = await caches.open(name);
        const head = (await (await c.match(bigKey)).body.getReader().read()).value.slice(0, 1024);
        await c.put(bigKey, new Response(head));
        const tok = new Uint8Array(await (await c.match(tokKey)).arrayBuffer());
        tok[100] ^= 1;
        await c.put(tokKey, new Response(tok));
    }""", [CACHE, key_of(site, big), key_of(site, tok)])
    faults.clear_log()
    page.reload()
    info = wait_ready(page)
    lines = notices(page)
    assert len(lines) == 1, lines
    assert "damaged" in lines[0] and big["name"] in lines[0] and "tokenizer.json" in lines[0], lines
    assert "truncated" in lines[0] and "sha256" in lines[0], lines
    print(f"healed: {lines[0]}")
    fetched = model_requests(faults, site.model_id)
    assert {big["name"], "tokenizer.json"} <= set(fetched) and len(fetched) == len(set(fetched)), fetched
    assert big["name"] not in info["fromCache"] and "tokenizer.json" not in info["fromCache"]
    ask_paris(page)
    # Healed for good: the next visit reads everything from the cache again.
    faults.clear_log()
    page.reload()
    info = wait_ready(page)
    assert model_requests(faults, site.model_id) == [] and notices(page) == []


def test_offline_after_first_visit(site):
    ensure_visited(site)
    page, faults = site.page, site.faults
    faults.down = True            # the server answers nothing...
    site.ctx.set_offline(True)    # ...and the browser has no network
    try:
        faults.clear_log()
        page.reload()
        info = wait_ready(page)
        assert page.evaluate("() => self.crossOriginIsolated") is True
        assert info["crossOriginIsolated"] is True
        assert sorted(info["fromCache"]) == sorted(f["name"] for f in fetched(site.manifest))
        print(f"offline: ready in {info['loadMs']} ms; requests that reached the server (closed unanswered): {faults.log}")
        ask_paris(page)
    finally:
        site.ctx.set_offline(False)
        faults.down = False


# ---------------------------------------------------------------- failures (fresh contexts)
@pytest.fixture()
def fresh(browser, static_root):
    faults = Faults()
    url = start_fault_server(static_root, faults)
    ctx = browser.new_context()
    page = ctx.new_page()
    model_id, manifest = model_of(static_root)
    yield SimpleNamespace(faults=faults, url=url, app=url + "?backend=wasm", ctx=ctx, page=page,
                          model_id=model_id, manifest=manifest, static=static_root)
    ctx.close()
    faults.stop()


def test_wrong_hash_is_an_error_naming_the_file(fresh):
    name = "tokenizer_config.json"
    path = f"models/{fresh.model_id}/{name}"
    good = (fresh.static / path).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x20
    fresh.faults.replace[path] = bytes(bad)
    page = fresh.page
    page.goto(fresh.app)
    assert wait_settled(page) == "error"
    err = error_text(page)
    assert "IntegrityError" in err and name in err and "sha256" in err, err
    print(f"wrong hash: {err}")
    assert page.is_visible("#retry") and page.is_disabled("#send")
    assert not [k for k in cache_keys(page) if f"/{name}?" in k]


def test_http_error_then_retry(fresh):
    page, faults = fresh.page, fresh.faults
    faults.fail(f"models/{fresh.model_id}/tokenizer.json", 500)
    page.goto(fresh.app)
    assert wait_settled(page) == "error"
    err = error_text(page)
    assert "LoadError" in err and "tokenizer.json" in err and "HTTP 500" in err, err
    print(f"HTTP 500: {err}")
    page.click("#retry")
    wait_ready(page)
    assert error_text(page) == ""
    assert model_requests(faults, fresh.model_id).count("tokenizer.json") == 2
    ask_paris(page)


def test_connection_dropped_mid_download_then_retry_keeps_verified_files(fresh):
    page, faults = fresh.page, fresh.faults
    big = biggest(fresh.manifest)
    others = sorted(f["name"] for f in fetched(fresh.manifest) if f is not big)
    faults.hold(f"models/{fresh.model_id}/{big['name']}", min(big["size"] // 4, 20_000_000), then="drop")
    page.goto(fresh.app)
    assert faults.held.wait(120)
    # Drop the connection once every other file is in and verified.
    page.wait_for_function(f"(n) => {CHAT}.querySelectorAll('#load-files li[data-state=done]').length === n",
                           arg=len(others), timeout=120_000)
    faults.release()
    assert wait_settled(page) == "error"
    err = error_text(page)
    assert "LoadError" in err and big["name"] in err and "broke off" in err, err
    print(f"dropped: {err}")
    faults.clear_log()
    page.click("#retry")
    info = wait_ready(page)
    assert model_requests(faults, fresh.model_id) == [big["name"]]
    assert sorted(info["fromCache"]) == others


def test_full_storage_runs_from_memory(fresh):
    page = fresh.page
    big = biggest(fresh.manifest)
    cdp = fresh.ctx.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": fresh.url.rstrip("/"), "quotaSize": big["size"] // 2})
    page.goto(fresh.app)
    info = wait_ready(page)
    lines = notices(page)
    assert len(lines) == 1 and "running from memory" in lines[0] and "QuotaExceededError" in lines[0], lines
    print(f"quota: {lines[0]}")
    assert info["fromCache"] == []
    ask_paris(page)


# ---------------------------------------------------------------- the incremental SHA-256
def test_incremental_sha256_matches_hashlib(tmp_path):
    """model_store.mjs's Sha256 (run by Node) against hashlib: lengths around the 64-byte block and
    its padding boundary, fed in uneven chunks."""
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    store = Path(__file__).resolve().parents[2] / "web" / "model_store.mjs"
    script = tmp_path / "sha.mjs"
    script.write_text(f"""
import {{ Sha256 }} from {json.dumps(store.as_uri())};
const out = [];
for (const n of [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 65536, 100003]) {{
  const d = new Uint8Array(n);
  for (let i = 0; i < n; i++) d[i] = (i * 2654435761 >>> 13) & 255;
  const s = new Sha256();
  for (let o = 0, k = 1; o < n; o += k, k = (k * 7 + 3) % 257 + 1) s.update(d.subarray(o, o + k));
  out.push([n, s.hex()]);
}}
console.log(JSON.stringify(out));
""")
    got = json.loads(subprocess.run([node, str(script)], check=True, capture_output=True, text=True).stdout)
    for n, digest in got:
        data = bytes(((i * 2654435761 % 2**32) >> 13) & 255 for i in range(n))
        assert digest == hashlib.sha256(data).hexdigest(), n
