"""`build.py soak`: the long soak and the long fuzz (issue 14, items 1, 4 and 7), in headless
Chromium with the real model, through the public JS API (tests/browser/fuzz/soak.mjs, fuzz.mjs).

    python3 build.py soak [--turns 200] [--conversations 50] [--fuzz-runs 1000] [--props-examples 400] [--out soak.json]

Prints the memory curve (the renderer process's resident set, read from /proc: the page, its
worker and their wasm memories) of one
conversation of --turns turns and of --conversations conversations in one tab, the sampled greedy
answers replayed on a fresh engine (all must be equal), the fuzzer's outcome counts, and the Python
API's under hypothesis in Pyodide (tests/browser/pyprops); writes them all as JSON to --out. The
short versions are tests/browser/test_soak.py, test_fuzz.py and test_python_props.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "web"))
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT / "tools" / "bench"))

from fuzz_site import fuzz_site, open_engine_page  # noqa: E402
from serve import IntabHandler, make_server  # noqa: E402
from bench import proc_status_bytes, renderer_pids  # noqa: E402

CHROMIUM = os.environ.get("INTAB_CHROMIUM", "/usr/lib/chromium/chromium")
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-quic", "--enable-blink-features=ForceEagerMeasureMemory"]


def renderer_rss() -> int:
    """Bytes resident in this process's Chromium renderers (VmRSS), summed: the soak's page, its
    worker and their wasm memories live in one renderer; the sum also holds Chromium's own UI
    renderer (--top-chrome-webui, ~150 MB, constant), so the curve's growth is the page's."""
    return sum(proc_status_bytes(pid, "VmRSS") or 0 for pid in renderer_pids())


def mib(b) -> str:
    return f"{b / 2**20:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="build.py soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--memory-points", type=int, default=20, help="memory measurements over the long conversation")
    ap.add_argument("--conversations", type=int, default=50)
    ap.add_argument("--turns-each", type=int, default=3)
    ap.add_argument("--fuzz-runs", type=int, default=1000)
    ap.add_argument("--props-examples", type=int, default=400, help="hypothesis examples in Pyodide (0: none)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "soak.json")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    site = fuzz_site(ROOT / "static", Path(tempfile.mkdtemp(prefix="intab-soak-")))
    server = make_server(site, "127.0.0.1", 0, handler_class=IntabHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/" % server.server_address[1]
    report: dict = {"turns": a.turns, "conversations": a.conversations, "load": os.getloadavg()}
    t0 = time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(0)
            page.expose_function("intabHostRss", renderer_rss)
            open_engine_page(page, url, soak="soak", fuzzer="fuzz")
            every = max(1, a.turns // a.memory_points)
            sample = sorted({0, a.turns // 4, a.turns // 2, a.turns - 1})
            one = page.evaluate("(o) => soak.longConversation(engine, o)",
                                {"turns": a.turns, "maxTokens": a.max_tokens, "every": every, "sample": sample})
            print(f"one conversation, {a.turns} turns (memory MiB by turn; prompt tokens; messages dropped):")
            for q in one["curve"]:
                print(f"  turn {q['turn']:4d}  {mib(q['bytes']):>7} MiB  prompt {q['prompt_tokens']:5d}  dropped {q['dropped']:4d}  at {q['s']} s")
            csample = sorted({0, a.conversations // 2, a.conversations - 1})
            many = page.evaluate("(o) => soak.manyConversations(engine, o)",
                                 {"conversations": a.conversations, "turnsEach": a.turns_each, "maxTokens": 8, "sample": csample})
            print(f"{a.conversations} conversations x {a.turns_each} turns (memory MiB; tokens restored from a snapshot):")
            for q in many["curve"]:
                print(f"  round {q['round']}  conversation {q['conversation']:3d}  {mib(q['bytes']):>7} MiB  restored {q['restored']}  at {q['s']} s")
            bad = page.evaluate("""async ([a, b, n]) => {
                const fresh = await intab.create({ backend: 'wasm' });
                try { return [...await soak.replay(fresh, a, n), ...await soak.replay(fresh, b, 8)]; } finally { fresh.unload(); }
            }""", [one["samples"], many["samples"], a.max_tokens])
            print(f"greedy answers replayed on a fresh engine: {len(one['samples']) + len(many['samples'])}, differing: {len(bad)} {bad}")
            fz = page.evaluate("(o) => fuzzer.fuzz(engine, intab.IntabError, o)", {"numRuns": a.fuzz_runs, "seed": a.seed, "probeEvery": 25})
            print(f"fuzz: {fz['runs']} runs in {fz['seconds']:.0f} s, all typed, engine usable: {fz['outcomes']}")
            report.update(one=one["curve"], many=many["curve"], replay_differing=bad, fuzz=fz)
            if a.props_examples:
                report["props"] = python_props(browser, a.props_examples, a.seed)
        finally:
            browser.close()
            server.shutdown()
    for name in ("one", "many"):
        c = report[name]
        if len(c) > 2:
            after = [q["bytes"] for q in c[1:]]
            report[f"{name}_growth_after_warmup_mib"] = round((max(after) - after[0]) / 2**20, 1)
    report["seconds"] = round(time.time() - t0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1))
    print(f"growth after warm-up: one conversation {report.get('one_growth_after_warmup_mib')} MiB, "
          f"{a.conversations} conversations {report.get('many_growth_after_warmup_mib')} MiB; report: {a.out}")
    return 1 if report["replay_differing"] or (report.get("props") or {}).get("finding") else 0


def python_props(browser, examples: int, seed: int) -> dict:
    """The Python API under hypothesis in Pyodide, with a budget of `examples` (a page of its own)."""
    from test_python_props import run_props, serve_props

    faults, url = serve_props(ROOT / "static")
    context = browser.new_context()
    try:
        r = run_props(context, url, examples, seed, timeout_ms=0)
    finally:
        context.close()
        faults.stop()
    print(f"hypothesis (Python API, Pyodide): {r.get('calls')} calls in {r.get('seconds')} s, seed {seed}; "
          f"finding: {r.get('finding') or 'none'}; {r.get('outcomes')}")
    return r


if __name__ == "__main__":
    sys.exit(main())
