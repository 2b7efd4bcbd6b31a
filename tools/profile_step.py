"""Where a decode step's time goes in onnxruntime-web: per-op kernel time from onnxruntime's own
profiler, run in the real worker in headless Chromium.

    .venv/bin/python tools/profile_step.py [--variants smollm2-135m-instruct,smollm2-135m-instruct-fused]
                                           [--threads 2] [--n 64]

Prints, per variant: the step time as the bridge sees it (session.run), the sum of kernel times,
the rest (the executor's per-node overhead, allocations, KV copies in and out), and the op types
by time. The profiler itself adds per-node cost, so read shares, not absolute times; the
benchmark (`python3 build.py bench`) gives the speeds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "web")]

CHROMIUM = os.environ.get("INTAB_CHROMIUM", "/usr/lib/chromium/chromium")


def site(variants: list[str]) -> Path:
    """A served folder: static/ (linked) + the profile page + the variants' model folders."""
    from models.prepare import prepare
    from models.recipes import RECIPES

    root = Path(tempfile.mkdtemp(prefix="intab-profile-"))
    for p in (REPO / "static").iterdir():
        if p.name != "models":
            os.symlink(p, root / p.name)
    for p in (REPO / "tools" / "profile").iterdir():
        os.symlink(p, root / p.name)
    (root / "models").mkdir()
    for v in variants:
        os.symlink(prepare(RECIPES[v], REPO / ".cache"), root / "models" / v)
    (root / "models" / "index.json").write_text(json.dumps({"models": variants}))
    return root


def summarize(out: dict) -> dict:
    events = out["events"]
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    decode = runs[1:]   # the first run is the prompt's prefill (one chunk)
    by_op: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    kernel = 0.0
    for r in decode:
        lo, hi = r["ts"], r["ts"] + r["dur"]
        for e in nodes:
            if lo <= e["ts"] <= hi:
                op = e.get("args", {}).get("op_name", "?")
                by_op[op] += e["dur"]
                count[op] += 1
                kernel += e["dur"]
    n = max(1, len(decode))
    run_ms = sum(r["dur"] for r in decode) / n / 1000
    return {"steps": len(decode), "run_ms": run_ms, "kernel_ms": kernel / n / 1000,
            "ops": sorted(((op, by_op[op] / n / 1000, count[op] / n) for op in by_op), key=lambda x: -x[1])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    from serve import make_server

    variants = args.variants.split(",")
    root = site(variants)
    server = make_server(root, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/profile.html"
    with sync_playwright() as pw:
        for v in variants:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context().new_page()
            for profiling in (0, 1):   # unprofiled step time first, then the profile
                page.goto(f"{url}?model={v}&threads={args.threads}&n={args.n}&profiling={profiling}")
                page.wait_for_function("() => ['done', 'error'].includes(document.body.dataset.state)",
                                       timeout=900_000)
                out = json.loads(page.evaluate("() => document.body.dataset.results"))
                if "error" in out:
                    print(f"{v}: {out['error']}")
                    break
                prof = out["result"]["profile"]["decode"]
                if not profiling:
                    print(f"\n{v}, WASM {args.threads} thread(s): decode step {prof['run_ms']:.1f} ms in session.run "
                          f"+ {prof['bridge_ms']:.2f} ms bridge + {out['result']['python_ms_per_token']:.2f} ms Python "
                          f"({out['result']['decode_tok_s']:.1f} tok/s), unprofiled")
                    continue
                s = summarize(out)
                other = s["run_ms"] - s["kernel_ms"]
                print(f"  profiled: {s['steps']} steps, {s['run_ms']:.1f} ms a step: kernels {s['kernel_ms']:.1f} ms, "
                      f"between kernels {other:.1f} ms ({100 * other / s['run_ms']:.0f}%)")
                for op, ms, c in s["ops"][:12]:
                    print(f"    {op:<34} {ms:7.2f} ms {100 * ms / s['run_ms']:5.1f}%  {c:5.0f} nodes")
            browser.close()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
