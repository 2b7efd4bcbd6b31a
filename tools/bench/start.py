"""The start's timeline: the app (web/index.html, its service worker included) opened cold and warm.

    python3 build.py bench --start [--runs 3] [--warm 3] [--threads 2] [--offline] [--configs ,snapshot=0] [--no-wllama]

Each run opens a fresh browser (empty profile). Visit 1 is cold: nothing cached, the model
downloaded. Visits 2.. are warm, as a returning visitor's: a new page in the same profile, the
model read from Cache Storage (model_store.mjs), the app shell through the service worker (sw.js)
and the HTTP cache. With --offline one more warm visit runs with the network cut (the service
worker's cache only): the difference to an online warm visit is what the shell's network
requests cost. --configs measures the app under several URL queries (e.g. `snapshot=0`: Pyodide
booted without its snapshot), each in its own fresh browser within every run, so a lever is
measured on its own against the build as it is, in the same load.

Figures per visit, on the page's clock (ms from navigation start): `ready` = the engine ready
(window.intab.readyAt, the chat usable), and each phase of the worker's timeline
(ready.timeline, web/timeline.mjs) as start-end. Medians over runs (and warm visits).
Next to it, in each run, wllama's bench page (pages/wllama.mjs, no generation) in its own fresh
browser: cold (the GGUF downloaded) and warm visits, page open -> model loaded (issue 15: a cold
start no slower than wllama's). On a warm visit wllama reads the GGUF from its own OPFS cache
(bench.py's warm-visit bytes: 0), as intab reads its weights from Cache Storage.
The server is the benchmark's (COOP/COEP, the app's CSP, `Cache-Control: no-cache`: every
HTTP-cache hit is revalidated, as a server without cache headers would).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench import BASE_ARGS, CHROMIUM, RESULTS, Counter, assemble_site, make_bench_server, markdown_table, say

WLLAMA_READY = "() => ['ready', 'done', 'error'].includes(document.body.dataset.bench)"


def wllama_run(pw, base: str, model: str, threads: int, warm: int, timeout_ms: float) -> list[dict]:
    """wllama's load-to-ready, cold then warm visits, in one fresh browser."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
    try:
        ctx = browser.new_context()
        out = []
        for k in ["cold"] + ["warm"] * warm:
            page = ctx.new_page()
            try:
                page.goto(f"{base}bench/wllama.html?model={model}&threads={threads}&gen=0")
                page.wait_for_function(WLLAMA_READY, timeout=timeout_ms, polling=100)
                r = page.evaluate("() => window.benchResult")
                if r.get("error"):
                    raise RuntimeError(r["error"])
                out.append({"kind": k, "ready": r["loadMs"], "info": r.get("info")})
            finally:
                page.close()
        return out
    finally:
        browser.close()

READY = "() => ['ready', 'error'].includes(document.body.dataset.state)"
# The page's view of one visit: its own clock, the worker's timeline moved onto it.
VISIT = """() => {
  const i = window.intab.info || {};
  const tl = i.timeline || { origin: performance.timeOrigin, spans: {} };
  const shift = tl.origin - performance.timeOrigin;
  const spans = {};
  for (const [k, [a, b]] of Object.entries(tl.spans)) spans[k] = [a + shift, b === null ? null : b + shift];
  const nav = performance.getEntriesByType('navigation')[0];
  return { ready: window.intab.readyAt, state: document.body.dataset.state, loadMs: i.loadMs, fromCache: i.fromCache,
           kernel: i.kernel, threads: i.threads, worker_start: shift, spans,
           document: nav ? nav.responseEnd : null, controlled: !!navigator.serviceWorker.controller };
}"""


def visit(ctx, url: str, timeout_ms: float) -> dict:
    page = ctx.new_page()
    try:
        page.goto(url)
        page.wait_for_function(READY, timeout=timeout_ms, polling=100)
        v = page.evaluate(VISIT)
        if v["state"] != "ready":
            raise RuntimeError(f"the app did not load: {page.inner_text('#error')}")
        return v
    finally:
        page.close()


def one_run(pw, base: str, threads: int, warm: int, offline: bool, timeout_ms: float, query: str = "") -> list[dict]:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
    try:
        ctx = browser.new_context()
        url = f"{base}index.html?backend=wasm&threads={threads}" + (f"&{query}" if query else "")
        visits = [{"kind": "cold", **visit(ctx, url, timeout_ms)}]
        for _ in range(warm):
            visits.append({"kind": "warm", **visit(ctx, url, timeout_ms)})
        if offline:
            ctx.set_offline(True)
            try:
                visits.append({"kind": "offline", **visit(ctx, url, timeout_ms)})
            except Exception as e:  # noqa: BLE001 - reported; the online figures stand
                say(f"offline visit failed: {e}")
            ctx.set_offline(False)
        return visits
    finally:
        browser.close()


def med(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def print_table(visits: list[dict]) -> None:
    kinds = [k for k in ("cold", "warm", "offline") if any(v["kind"] == k for v in visits)]
    phases: list[str] = []
    for v in visits:
        for k in sorted(v["spans"], key=lambda k: v["spans"][k][0]):
            if k not in phases:
                phases.append(k)
    f = lambda x: "-" if x is None else f"{x:.0f}"  # noqa: E731
    head = ["phase (ms from navigation)"] + [f"{k} (n={sum(v['kind'] == k for v in visits)})" for k in kinds]
    rows = [["ready (page)"] + [f(med([v["ready"] for v in visits if v["kind"] == k])) for k in kinds],
            ["worker created"] + [f(med([v["worker_start"] for v in visits if v["kind"] == k])) for k in kinds]]
    for p in phases:
        row = [p]
        for k in kinds:
            s = [v["spans"].get(p) for v in visits if v["kind"] == k]
            a, b = med([x[0] for x in s if x]), med([x[1] for x in s if x])
            row.append(f"{f(a)}-{f(b)} ({f(None if a is None or b is None else b - a)})")
        rows.append(row)
    markdown_table(head, rows)
    for k in kinds:
        r = [v["ready"] for v in visits if v["kind"] == k]
        print(f"{k}: ready {', '.join(f(x) for x in r)} ms")


def main(argv: list[str]) -> int:
    from models.prepare import prepare
    from models.recipes import DEFAULT

    ap = argparse.ArgumentParser(prog="build.py bench --start", description="The app's start, cold and warm, phase by phase.")
    ap.add_argument("--runs", type=int, default=3, help="fresh browsers (each: one cold visit, then the warm ones)")
    ap.add_argument("--warm", type=int, default=3, help="warm visits per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--offline", action="store_true", help="one more warm visit with the network cut")
    ap.add_argument("--configs", default="", help="comma-separated URL queries to compare ('' = as built), e.g. ',snapshot=0'")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per visit")
    ap.add_argument("--no-wllama", action="store_true", help="skip wllama's load-to-ready beside intab's")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from models.source import fetch_gguf

    cache = Path(__file__).resolve().parents[2] / ".cache"
    d = prepare(DEFAULT, cache)
    site = assemble_site({DEFAULT.model_id: d}, d, {"prompts": []}, {DEFAULT.model_id: fetch_gguf(DEFAULT, cache)})
    counter = Counter()
    server = make_bench_server(site, counter)
    base = "http://127.0.0.1:%d/" % server.server_address[1]
    say(f"serving {site} at {base}; load avg {os.getloadavg()[0]:.2f}")
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    configs = args.configs.split(",") if args.configs else [""]
    visits: list[dict] = []
    wllama: list[dict] = []
    with sync_playwright() as pw:
        for i in range(args.runs):
            for q in configs:
                for v in one_run(pw, base, args.threads, args.warm, args.offline, args.timeout * 1000, q):
                    v["run"], v["config"] = i, q
                    visits.append(v)
                    say(f"run {i + 1}/{args.runs} [{q or 'as built'}] {v['kind']}: ready {v['ready']:.0f} ms "
                        f"(worker {v['loadMs']} ms, kernel {v['kernel']}, cached {len(v['fromCache'] or [])} files, "
                        f"controlled by the service worker: {v['controlled']})")
            if not args.no_wllama:
                try:
                    for v in wllama_run(pw, base, DEFAULT.model_id, args.threads, args.warm, args.timeout * 1000):
                        v["run"] = i
                        wllama.append(v)
                        say(f"run {i + 1}/{args.runs} wllama {v['kind']}: ready {v['ready']:.0f} ms")
                except Exception as e:  # noqa: BLE001 - reported; intab's figures stand
                    say(f"run {i + 1}/{args.runs} wllama FAILED: {e}")
    server.shutdown()
    print()
    print(f"intab start, {time.strftime('%Y-%m-%d %H:%M:%S %z')}, {os.cpu_count()} CPUs, load avg "
          f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}, WASM {args.threads} threads; start-end (length), medians")
    for q in configs:
        print(f"\n## {q or 'as built'}")
        print_table([v for v in visits if v["config"] == q])
    if wllama:
        print("\n## intab (as built) next to wllama, page open -> ready (ms, medians)")
        rows = []
        for k in ("cold", "warm"):
            a = med([v["ready"] for v in visits if v["kind"] == k and v["config"] == configs[0]])
            b = med([v["ready"] for v in wllama if v["kind"] == k])
            rows.append([k, "-" if a is None else f"{a:.0f}", "-" if b is None else f"{b:.0f}",
                         f"{a / b:.2f}x" if a and b else "-"])
        markdown_table(["visit", "intab", "wllama", "intab/wllama"], rows)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"start-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"loadavg": [load_before, os.getloadavg()], "args": vars(args) | {"out": str(args.out)},
                               "visits": visits, "wllama": wllama}, indent=1) + "\n")
    say(f"results: {out}")
    return 0
