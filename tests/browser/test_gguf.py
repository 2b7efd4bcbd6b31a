"""Your own GGUF, opened in the tab (issue 13.5), in Chromium on SmolLM2-135M-Instruct's real GGUF
(the build's source, .cache/sources/): through intab.create({model: blob}), a same-origin URL and
the demo page's file input; the reference's greedy tokens; kept on the device across a reload and
forgotten; a garbage file, a truncated one and an unsupported architecture each give their typed
error and leave the page usable. Nothing leaves the tab: no request off the origin."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app_driver import chat, new_chat, open_app, set_settings
from model_files import one_tensor_gguf
from test_accessibility import axe_violations, report

ROOT = Path(__file__).resolve().parents[2]
CASES = ("capital", "code_python")


@pytest.fixture(scope="module")
def smollm_gguf(built_model_dir) -> Path:
    from models.recipes import DEFAULT
    from models.source import fetch_gguf
    return fetch_gguf(DEFAULT, ROOT / ".cache")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, smollm_gguf) -> dict[str, Path]:
    """A garbage file, the real GGUF cut inside its tensor data, a tiny 'mamba' GGUF and a llama GGUF
    with a Q2_K tensor (a block kind intab does not know)."""
    import gguf

    d = tmp_path_factory.mktemp("bad-gguf")
    (d / "garbage.gguf").write_bytes(b"PK\x03\x04 this is a zip, not a model" + bytes(4000))
    with open(smollm_gguf, "rb") as f:
        (d / "truncated.gguf").write_bytes(f.read(20 << 20))
    one_tensor_gguf(d / "mamba.gguf", "mamba", np.zeros((4, 32), np.float32))
    # One Q2_K super-block row: 256 values in 84 bytes (gguf-py's GGML_QUANT_SIZES).
    one_tensor_gguf(d / "q2k.gguf", "llama", np.zeros((4, 84), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q2_K)
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def gguf_site(static_root, tmp_path_factory, smollm_gguf, bad_files) -> Path:
    """static/ (linked) plus the GGUF at /files/ (a same-origin URL) and a blank page."""
    site = tmp_path_factory.mktemp("gguf-site")
    for p in Path(static_root).iterdir():
        os.symlink(p.resolve(), site / p.name)
    (site / "files").mkdir()
    os.symlink(smollm_gguf, site / "files" / smollm_gguf.name)
    (site / "blank.html").write_text("<!doctype html><meta charset=utf-8><title>gguf</title><body></body>\n")
    return site


@pytest.fixture(scope="module")
def gguf_url(serve, gguf_site) -> str:
    return serve(gguf_site)


GREEDY = """async ([source, cases, keep]) => {
    const intab = await import('/intab.mjs');
    let model = source;
    if (source === 'blob') model = await (await fetch('/files/SmolLM2-135M-Instruct.Q4_1.gguf')).blob();
    const phases = new Set();
    const engine = await intab.create({ model, keep, backend: 'auto', onProgress: (p) => phases.add(p.phase + ':' + (p.message || '').split(' ')[0]) });
    const out = {};
    for (const [name, messages, n] of cases) out[name] = (await engine.generate('chat', messages, { temperature: 0, max_tokens: n })).token_ids;
    const info = engine.info;
    await engine.unload();
    const span = (k) => info.timeline.spans[k] ? Math.round(info.timeline.spans[k][1] - info.timeline.spans[k][0]) : null;
    return { out, phases: [...phases], backend: info.backend, backendReason: info.backendReason, kernel: info.kernel,
             kernelReason: info.kernelReason, model: info.model, kept: await intab.keptModels(),
             ms: { load: info.loadMs, gguf: span('model.gguf'), header: span('gguf.header'), python: span('gguf.python'), weights: span('gguf.weights'), pyodide: span('pyodide.boot'), bridge: span('kernel.bridge') } };
}"""


def golden_cases(golden, n=24):
    by = {c["name"]: c for c in golden["cases"]}
    return [[name, by[name]["messages"], n] for name in CASES], {name: by[name]["output_ids"][:n] for name in CASES}


def test_blob_and_url_give_the_reference_tokens(browser, gguf_url, golden):
    cases, want = golden_cases(golden)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(gguf_url + "blank.html")
        got = page.evaluate(GREEDY, ["blob", cases, False])
        prebuilt = page.evaluate(GREEDY, [None, cases[:1], False])
        print(f"\n  load, ms: prebuilt (cached) {prebuilt['ms']}; GGUF blob {got['ms']}")
        assert got["out"] == want and prebuilt["out"] == {"capital": want["capital"]}
        assert got["kernel"] == "intab" and got["backend"] == "wasm" and "GGUF" in got["backendReason"]
        assert got["model"]["source"] == {"kind": "blob", "name": "model.gguf", "kept": None}
        assert got["kept"] == [] and any(p.startswith("download:Reading") for p in got["phases"])
        got = page.evaluate(GREEDY, ["/files/SmolLM2-135M-Instruct.Q4_1.gguf", cases[:1], False])
        assert got["out"] == {"capital": want["capital"]}
        assert got["model"]["source"]["kind"] == "url" and got["model"]["id"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    finally:
        ctx.close()


MESSAGE = "() => document.getElementById('gguf-message')"


def wait_opened(page, timeout_ms=240_000) -> dict:
    """After a file, address or kept model was chosen: the page's line about it ({kind, error, text})."""
    page.wait_for_function(f"""() => {{ const m = ({MESSAGE})();
        return (m.dataset.kind === 'error' || m.textContent.startsWith('Running'))
            && ['ready', 'error'].includes(document.body.dataset.state); }}""", timeout=timeout_ms)
    return page.evaluate(f"() => {{ const m = ({MESSAGE})(); return {{ kind: m.dataset.kind, error: m.dataset.error || '', text: m.textContent }}; }}")


def drop_file(page, path: str) -> None:
    """A file dropped on the drop zone, as a drag from the desktop delivers it."""
    page.evaluate("""async (path) => {
        const blob = await (await fetch(path)).blob();
        const dt = new DataTransfer();
        dt.items.add(new File([blob], path.split('/').pop()));
        document.getElementById('gguf-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""", path)


def greedy_in_page(page, case, n=24) -> list[int]:
    new_chat(page)
    set_settings(page, temperature=0, max_tokens=n, top_p=1, top_k=0, seed="")
    return chat(page, case["messages"][-1]["content"]).token_ids


def test_the_page_opens_keeps_and_forgets_a_gguf(browser, gguf_url, gguf_site, bad_files, smollm_gguf, golden):
    """File input, drop zone and address field; typed errors that leave the page usable; the kept
    model listed after a reload and opened from the list; Forget everything removes it. axe finds
    nothing wrong with the error line nor the list (service workers blocked: axe's routing)."""
    for p in bad_files.values():
        os.symlink(p, gguf_site / "files" / p.name)
    case = next(c for c in golden["cases"] if c["name"] == "capital")
    ctx = browser.new_context(service_workers="block")
    try:
        page = open_app(ctx, gguf_url + "index.html?backend=wasm")
        page.click("#settings summary")
        # Errors first, each typed and named: the page stays usable (the real file opens after them).
        page.set_input_files("#gguf-file", str(bad_files["garbage"]))
        got = wait_opened(page)
        assert got["kind"] == "error" and got["error"] == "NotGGUF" and "garbage.gguf" in got["text"], got
        page.fill("#gguf-url", "/files/mamba.gguf")
        page.click("#gguf-open-url")
        got = wait_opened(page)
        assert got["error"] == "UnsupportedArchitecture" and "'mamba'" in got["text"] and "llama" in got["text"], got
        drop_file(page, "/files/truncated.gguf")
        got = wait_opened(page)
        assert got["error"] == "TruncatedFile" and "truncated.gguf is truncated" in got["text"], got
        v = axe_violations(page, gguf_url)
        assert v == [], report(v)

        page.check("#gguf-keep")
        page.set_input_files("#gguf-file", str(smollm_gguf))
        got = wait_opened(page)
        assert got["kind"] == "info" and "kept on this device" in got["text"], got
        info = page.evaluate("() => document.querySelector('intab-chat').info")
        assert info["kernel"] == "intab" and info["model"]["source"]["kept"] == smollm_gguf.name
        assert greedy_in_page(page, case) == case["output_ids"][:24]
        page.wait_for_selector("#kept-list li")
        v = axe_violations(page, gguf_url)
        assert v == [], report(v)

        page.reload()
        page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=240_000)
        page.click("#settings summary")
        page.wait_for_selector(f"#kept-list li[data-name='{smollm_gguf.name}']")
        page.click(f"#kept-list button[aria-label='Open {smollm_gguf.name}']")
        got = wait_opened(page)
        assert got["kind"] == "info", got
        info = page.evaluate("() => document.querySelector('intab-chat').info")
        assert info["model"]["source"]["kind"] == "kept" and info["model"]["id"] == f"kept:{smollm_gguf.name}"
        assert greedy_in_page(page, case) == case["output_ids"][:24]

        privacy = page.evaluate("() => window.intab.privacy()")
        assert privacy["offOrigin"] == 0 and privacy["violations"] == 0, privacy
        page.click("#forget")
        page.wait_for_function("() => document.body.dataset.forgotten !== undefined")
        assert page.evaluate("async () => (await import('/intab.mjs')).keptModels()") == []
        assert page.is_hidden("#kept")
    finally:
        ctx.close()


def test_api_keeps_by_name_and_types_its_errors(browser, gguf_url, gguf_site, bad_files, golden):
    """create({model: arrayBuffer, keep: 'mine'}), then 'kept:mine' with no file; forgetKept; a GGUF
    whose matrices cycle through all 11 block kinds (models/synthetic.py's tiny-kinds, untied) opened
    in the tab gives transformers' greedy ids (tests/golden/synthetic.json); a block kind intab does
    not know (Q2_K) and bad values are typed errors."""
    import json

    from models.synthetic import TINY, build_model, gguf_path

    build_model(TINY["tiny-kinds"], ROOT / ".cache", say=lambda *_: None)
    for name, target in (("tiny-kinds.gguf", gguf_path("tiny-kinds", ROOT / ".cache")), ("q2k.gguf", bad_files["q2k"])):
        link = gguf_site / "files" / name
        if not link.exists():
            os.symlink(target, link)
    [kinds_case] = [c for c in json.loads((ROOT / "tests" / "golden" / "synthetic.json").read_text())["cases"]
                    if c["name"] == "tiny-kinds"]
    cases, want = golden_cases(golden)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(gguf_url + "blank.html")
        got = page.evaluate("""async ([cases, kindsCase]) => {
            const intab = await import('/intab.mjs');
            const typed = async (options) => {
                try { await intab.create(options); return null; }
                catch (e) { return { name: e.name, message: e.message, hint: e.hint, param: e.param, typed: e instanceof intab.IntabError }; }
            };
            const kinds = await typed({ model: '/files/q2k.gguf' });
            const badKeep = await typed({ model: '/files/tiny-kinds.gguf', keep: 3 });
            // Every block kind, in the tab: greedy from the recorded prompt ids.
            const all = await intab.openBridge({ model: '/files/tiny-kinds.gguf' });
            let r = await all.forward(kindsCase.prompt_ids, 0, 1);
            const allIds = [];
            while (allIds.length < kindsCase.greedy_ids.length) {
              allIds.push(r.ids[0]);
              r = await all.forward([r.ids[0]], kindsCase.prompt_ids.length + allIds.length - 1, 1);
            }
            all.release();
            const badModel = await typed({ model: 42 });
            const buf = await (await fetch('/files/SmolLM2-135M-Instruct.Q4_1.gguf')).arrayBuffer();
            const first = await intab.create({ model: buf, keep: 'mine' });
            await first.unload();
            const kept = await intab.keptModels();
            const again = await intab.create({ model: 'kept:mine' });
            const [name, messages, n] = cases[0];
            const ids = (await again.generate('chat', messages, { temperature: 0, max_tokens: n })).token_ids;
            const info = again.info;
            await again.unload();
            // The runtime alone (Python in the page's own Pyodide): the folder's texts come with it.
            const bridge = await intab.openBridge({ model: '/files/SmolLM2-135M-Instruct.Q4_1.gguf' });
            const bridgeFiles = Object.keys(bridge.files).sort();
            const step = await bridge.forward([1, 9690], 0, 4);
            bridge.release();
            const removed = await intab.forgetKept('mine');
            const gone = await typed({ model: 'kept:mine' });
            return { kinds, allIds, badKeep, badModel, kept, ids, source: info.model.source, removed, after: await intab.keptModels(), gone,
                     bridgeFiles, kvLength: step.kvLength, candidates: step.ids.length };
        }""", [cases, kinds_case])
        assert got["kinds"]["name"] == "UnsupportedBlockKind" and got["kinds"]["typed"] and got["kinds"]["param"] == "model"
        assert "q2k.gguf is GGUF Q2_K" in got["kinds"]["message"] and "Q4_K" in got["kinds"]["hint"]
        assert got["allIds"] == kinds_case["greedy_ids"]
        assert got["badKeep"]["name"] == "InvalidParameter" and got["badKeep"]["param"] == "keep"
        assert got["badModel"]["name"] == "InvalidParameter" and got["badModel"]["param"] == "model"
        [k] = got["kept"]
        assert k["id"] == "kept:mine" and k["architecture"] == "llama" and k["size"] > 96e6 and k["kinds"] == ["F32", "Q4_1", "Q8_0"]
        assert got["ids"] == want["capital"] and got["source"] == {"kind": "kept", "name": "mine", "kept": "mine"}
        assert got["removed"] == 6 and got["after"] == []
        assert got["gone"]["name"] == "LoadError" and "no model named 'mine'" in got["gone"]["message"]
        assert got["bridgeFiles"] == ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
        assert got["kvLength"] == 2 and got["candidates"] == 4
    finally:
        ctx.close()


def test_gemma3_q4_k_m_gguf_opened_in_the_tab_gives_transformers_completions(browser, gguf_url, gguf_site):
    """Gemma 3 270M's real GGUF (Q4_K_M: Q4_K, Q6_K, Q5_0, Q8_0 and F32 tensors, a 262,144-token
    SentencePiece vocabulary, sliding-window layers) opened by address in the tab: the tokenizer the
    tab builds from its metadata gives transformers' prompt ids, and the kernel transformers' greedy
    completion (tests/golden/gemma3-270m.greedy.json, made on the same GGUF)."""
    import json

    from models.recipes import GEMMA3_270M
    from models.source import fetch_gguf

    gguf_file = fetch_gguf(GEMMA3_270M, ROOT / ".cache")
    link = gguf_site / "files" / gguf_file.name
    if not link.exists():
        os.symlink(gguf_file, link)
    golden = json.loads((ROOT / "tests" / "golden" / "gemma3-270m.greedy.json").read_text())
    [case] = [c for c in golden["cases"] if c["name"] == "capital"]
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(gguf_url + "blank.html")
        got = page.evaluate("""async ([url, prompt, n]) => {
            const intab = await import('/intab.mjs');
            const engine = await intab.create({ model: url });
            const ids = await engine.tokenize(prompt, { addSpecialTokens: true });
            const r = await engine.completions.create({ prompt, max_tokens: n, temperature: 0, ignore_eos: true });
            const info = engine.info;
            await engine.unload();
            return { promptIds: Array.from(ids), ids: r.intab.token_ids, kernel: info.kernel, arch: info.model.architecture,
                     context: info.model.contextWindow };
        }""", [f"/files/{gguf_file.name}", case["prompt"], len(case["output_ids"])])
    finally:
        ctx.close()
    print(got["kernel"], got["arch"], got["context"])
    assert got["kernel"] == "intab"
    assert got["promptIds"] == case["prompt_ids"]
    assert got["ids"] == case["output_ids"]
