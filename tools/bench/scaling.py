"""Scaling: intab and wllama on the same GGUF at each model size, decode against the roofline.

    python3 build.py bench --sizes 135m,270m,360m,0.5b,1b [--threads 2] [--runs 1] [--new-tokens 64]

Sizes (SIZES): 135m = SmolLM2-135M-Instruct (Q4_1, the default model), 270m = Gemma 3 270M
(Q4_K_M), and the synthetic full shapes of models/synthetic.py (random weights in the real shapes,
a Q4_K_M-like mix), built on demand into .cache/build/synthetic-*: 360m = SmolLM2-360M,
0.5b = Qwen2.5-0.5B, 0.6b = Qwen3-0.6B, 1b = Llama 3.2 1B. Each size gets its own plan (its own
tokenizer's ids for the ~200-token prompt; a base model without a chat template gets the plain
text), intab's page and wllama's page in fresh browsers, interleaved per run.

Where intab cannot run a size (its kernel or the converter does not know the architecture or a
block kind yet), the failure is kept in the table with its reason and the run goes on; where the
worker fell back to onnxruntime-web's float32 graph, the table says so (kernel column).

Roofline (../shared/notes/anchors.md): decode tok/s <= read bandwidth / bytes of weights read per
token. The bandwidth is measured once per session (numpy sum over 256 MiB, one core, best of 7:
a decode step is a stream over the weights); the bytes per token are the GGUF's tensors, the token
embedding counted as one row unless it is also the output layer (tied).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench import (CACHE, RESULTS, Bench, Counter, assemble_site, figures_of, make_bench_server, make_plan,
                   markdown_table, say)


@dataclass(frozen=True)
class Size:
    key: str          # --sizes name
    label: str
    recipe: str = ""  # models/recipes.py id, or
    shape: str = ""   # models/synthetic.py SHAPES name


SIZES = {s.key: s for s in (
    Size("135m", "SmolLM2-135M-Instruct Q4_1", recipe="smollm2-135m-instruct"),
    Size("270m", "Gemma 3 270M Q4_K_M", recipe="gemma3-270m"),
    Size("360m", "SmolLM2-360M shape (synthetic)", shape="smollm2-360m"),
    Size("0.5b", "Qwen2.5-0.5B shape (synthetic)", shape="qwen2.5-0.5b"),
    Size("0.6b", "Qwen3-0.6B shape (synthetic)", shape="qwen3-0.6b"),
    Size("1b", "Llama 3.2 1B shape (synthetic)", shape="llama3.2-1b"),
)}


def model_of(size: Size) -> tuple[str, Path, Path]:
    """(model id, intab's model folder, the GGUF it was built from), built on first use."""
    if size.recipe:
        from models.prepare import prepare
        from models.recipes import RECIPES
        from models.source import fetch_gguf
        r = RECIPES[size.recipe]
        return r.model_id, prepare(r, CACHE), fetch_gguf(r, CACHE)
    from models import synthetic
    d = synthetic.build_full(size.shape, CACHE, say)
    return d.name, d, synthetic.gguf_path(size.shape, CACHE)


def bytes_per_token(gguf: Path) -> dict:
    """Bytes of weights a decode step reads: every tensor once, the token embedding as one row
    (a lookup) unless no output tensor exists (tied: the embedding is the output layer too)."""
    from gguf import GGUFReader

    t = {x.name: int(x.n_bytes) for x in GGUFReader(str(gguf)).tensors}
    rows = {x.name: int(x.shape[-1]) if len(x.shape) > 1 else 1 for x in GGUFReader(str(gguf)).tensors}
    emb = t.get("token_embd.weight", 0)
    tied = "output.weight" not in t
    read = sum(t.values()) - (0 if tied else emb - emb // max(1, rows.get("token_embd.weight", 1)))
    return {"file_bytes": gguf.stat().st_size, "weight_bytes": sum(t.values()), "read_bytes": read, "tied": tied}


def read_bandwidth() -> float:
    """GB/s of a one-core streaming read (numpy sum of 256 MiB of float64), best of 7."""
    import numpy as np

    a = np.ones(256 * 2**20 // 8)
    a.sum()
    best = min(_timed(a.sum) for _ in range(7))
    return a.nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _med(runs: list[dict], key: str) -> float | None:
    v = [r["figures"].get(key) for r in runs if r["figures"].get(key) is not None]
    return statistics.median(v) if v else None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="build.py bench --sizes", description="intab vs wllama at each model size, with the roofline.")
    ap.add_argument("sizes", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runtimes", default="intab,wllama")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per page")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    if bad := [s for s in sizes if s not in SIZES]:
        ap.error(f"unknown size(s) {bad}: use {', '.join(SIZES)}")
    runtimes = [r for r in args.runtimes.split(",") if r]

    models, ggufs, plans, info = {}, {}, {}, {}
    for key in sizes:
        mid, d, g = model_of(SIZES[key])
        models[mid], ggufs[mid] = d, g
        plans[mid] = make_plan(d, args.new_tokens, 0, True)
        info[key] = {"model": mid, "prompt_tokens": len(plans[mid]["prompts"][0]["ids"]), **bytes_per_token(g)}
        say(f"{key}: {mid}, GGUF {info[key]['file_bytes'] / 1e6:.0f} MB, {info[key]['read_bytes'] / 1e6:.0f} MB read per token, "
            f"prompt {info[key]['prompt_tokens']} tokens ({plans[mid]['prompts'][0]['kind']})")
    bw = read_bandwidth()
    say(f"read bandwidth: {bw:.1f} GB/s (numpy sum, 1 core)")
    first = next(iter(models))
    site = assemble_site(models, models[first], plans[first], ggufs, plans)
    counter = Counter()
    server = make_bench_server(site, counter)
    base = "http://127.0.0.1:%d/" % server.server_address[1]

    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    t0 = time.time()
    raw: list[dict] = []
    failures: list[dict] = []
    with sync_playwright() as pw:
        bench = Bench(pw, base, counter, args.timeout)
        for i in range(args.runs):
            for key in sizes:
                mid = info[key]["model"]
                for rt in runtimes:
                    try:
                        r = bench.run(rt, mid, args.threads, "wasm", plan=mid)
                    except Exception as e:  # noqa: BLE001 - the size is marked, the run goes on
                        say(f"run {i + 1} {key} {rt}: FAILED: {str(e)[:300]}")
                        failures.append({"run": i, "size": key, "runtime": rt, "error": str(e)})
                        continue
                    r["run"], r["size"], r["figures"] = i, key, figures_of(r)
                    raw.append(r)
                    f = r["figures"]
                    say(f"run {i + 1} {key} {rt}: TTFT {f.get('ttft_p200_ms') or 0:.0f} ms, decode {f.get('decode_tok_s') or 0:.1f} tok/s, "
                        f"RSS {f['peak_rss_mb'] or 0:.0f} MB, kernel {r['cold'].get('info', {}).get('kernel', '-')}")
    server.shutdown()
    report = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(), "threads": args.threads,
                       "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "wall_s": round(time.time() - t0),
                       "read_gb_s": bw, "sizes": sizes, "runtimes": runtimes, "new_tokens": args.new_tokens},
              "sizes": info, "runs": raw, "failures": failures, "rows": rows_of(sizes, info, raw, failures, bw)}
    print_scaling(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out / f"sizes-{stamp}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    try:
        from chart import svg_to_png
        png = svg_to_png(scaling_svg(report), args.out / f"sizes-{stamp}.png")
        say(f"chart: {png}")
    except Exception as e:  # noqa: BLE001 - the numbers are already written
        say(f"chart failed: {e}")
    say(f"results: {out}")
    return 0 if raw else 1


def rows_of(sizes, info, raw, failures, bw) -> list[dict]:
    """Per size: the medians of each runtime, the ratios, the roofline fractions, the token check."""
    rows = []
    for key in sizes:
        row = {"size": key, "label": SIZES[key].label, "read_mb": info[key]["read_bytes"] / 1e6,
               "roofline_tok_s": bw * 1e9 / info[key]["read_bytes"]}
        for rt in ("intab", "wllama"):
            runs = [r for r in raw if r["size"] == key and r["runtime"] == rt]
            fails = [f["error"] for f in failures if f["size"] == key and f["runtime"] == rt]
            row[rt] = {k: _med(runs, k) for k in ("decode_tok_s", "prefill_p200_tok_s", "ttft_p200_ms", "peak_rss_mb", "cold_load_s")}
            row[rt]["n"] = len(runs)
            row[rt]["error"] = fails[0].split("(console:")[0].strip()[:160] if fails and not runs else None
            row[rt]["kernel"] = runs[0]["cold"].get("info", {}).get("kernel") if runs else None
            d = row[rt]["decode_tok_s"]
            row[rt]["roofline_frac"] = d / row["roofline_tok_s"] if d else None
        a = next((r for r in raw if r["size"] == key and r["runtime"] == "intab"), None)
        b = next((r for r in raw if r["size"] == key and r["runtime"] == "wllama"), None)
        if a and b:
            x, y = a["cold"]["runs"][0]["token_ids"], b["cold"]["runs"][0]["token_ids"]
            n = min(len(x), len(y))
            diff = next((i for i in range(n) if x[i] != y[i]), None)
            row["same_tokens"] = {"compared": n, "first_difference_at": diff,
                                  "prompt_tokens_match": b["cold"]["runs"][0].get("prompt_ids_match")}
        rows.append(row)
    return rows


def print_scaling(report: dict) -> None:
    m = report["meta"]
    print()
    print(f"intab vs wllama by model size, {m['date']}, {m['cpus']} CPUs, load avg {m['loadavg_before'][0]:.1f} -> "
          f"{m['loadavg_after'][0]:.1f}, WASM {m['threads']} threads, ~200-token prompt + {m['new_tokens']} greedy tokens; "
          f"read bandwidth {m['read_gb_s']:.1f} GB/s (numpy, 1 core); ratios = intab / wllama")
    f = lambda v, p="{:.1f}": "-" if v is None else p.format(v)  # noqa: E731
    ratio = lambda a, b: "-" if not a or not b else f"{a / b:.2f}x"  # noqa: E731
    head = ["size", "MB read/token", "roofline tok/s", "decode intab", "decode wllama", "ratio", "intab % roofline",
            "wllama % roofline", "prefill intab", "prefill wllama", "ratio", "TTFT ms intab", "TTFT ms wllama", "ratio",
            "RSS MB intab", "RSS MB wllama", "ratio", "same tokens", "notes"]
    rows = []
    for r in report["rows"]:
        i, w = r["intab"], r["wllama"]
        st = r.get("same_tokens")
        same = "-" if not st else ("yes" if st["first_difference_at"] is None else f"no (from {st['first_difference_at']})") + f", {st['compared']}"
        notes = []
        for rt, x in (("intab", i), ("wllama", w)):
            if x["error"]:
                notes.append(f"{rt} failed: {x['error']}")
        if i["kernel"] and i["kernel"] != "intab":
            notes.append(f"intab on {i['kernel']} (its kernel does not run this model yet)")
        if st and st.get("prompt_tokens_match") is False:
            notes.append("wllama's prompt tokens differ in count")
        pct = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
        rows.append([r["size"], f(r["read_mb"], "{:.0f}"), f(r["roofline_tok_s"]), f(i["decode_tok_s"]), f(w["decode_tok_s"]),
                     ratio(i["decode_tok_s"], w["decode_tok_s"]), pct(i["roofline_frac"]), pct(w["roofline_frac"]),
                     f(i["prefill_p200_tok_s"]), f(w["prefill_p200_tok_s"]), ratio(i["prefill_p200_tok_s"], w["prefill_p200_tok_s"]),
                     f(i["ttft_p200_ms"], "{:.0f}"), f(w["ttft_p200_ms"], "{:.0f}"), ratio(i["ttft_p200_ms"], w["ttft_p200_ms"]),
                     f(i["peak_rss_mb"], "{:.0f}"), f(w["peak_rss_mb"], "{:.0f}"), ratio(i["peak_rss_mb"], w["peak_rss_mb"]),
                     same, "; ".join(notes) or "-"])
    markdown_table(head, rows)


def scaling_svg(report: dict) -> str:
    """Two panels, decode and prefill tok/s against MB of weights read per token (log-free, linear
    axes), a line per runtime; the decode panel also draws the roofline."""
    from html import escape

    W, H, top = 520, 340, 70
    colors = {"intab": "#1f6fd1", "wllama": "#c2185b", "roofline": "#999"}
    rows = report["rows"]
    m = report["meta"]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W + 20}" height="{top + H + 20}" font-family="DejaVu Sans, Arial, sans-serif">',
         f'<rect width="{2 * W + 20}" height="{top + H + 20}" fill="white"/>',
         f'<text x="14" y="26" font-size="18" font-weight="bold">intab vs wllama by model size (WASM {m["threads"]} threads, same GGUF)</text>',
         f'<text x="14" y="46" font-size="12" fill="#444">{escape(m["date"])} - load avg {m["loadavg_before"][0]:.1f} -> '
         f'{m["loadavg_after"][0]:.1f} - read bandwidth {m["read_gb_s"]:.1f} GB/s - sizes {escape(", ".join(m["sizes"]))}</text>']
    xmax = max([r["read_mb"] for r in rows] + [1]) * 1.08
    for pi, (key, title) in enumerate((("decode_tok_s", "Decode tok/s"), ("prefill_p200_tok_s", "Prefill tok/s, ~200-token prompt"))):
        px, py = 10 + pi * W, top
        ax, ay, aw, ah = px + 50, py + 30, W - 80, H - 80
        series = {rt: [(r["read_mb"], r[rt][key]) for r in rows if r[rt][key]] for rt in ("intab", "wllama")}
        if key == "decode_tok_s":
            series["roofline"] = [(r["read_mb"], r["roofline_tok_s"]) for r in rows]
        fastest = max([v for rt in ("intab", "wllama") for _, v in series[rt]] + [1])
        # the roofline can be far above the runtimes: the axis stops at 3x the fastest of them
        vmax = min(max([v for pts in series.values() for _, v in pts] + [1]), 3 * fastest) * 1.15
        o.append(f'<text x="{px + 8}" y="{py + 16}" font-size="14" font-weight="bold">{escape(title)}</text>')
        o.append(f'<line x1="{ax}" y1="{ay + ah}" x2="{ax + aw}" y2="{ay + ah}" stroke="#333"/>')
        for k in range(5):
            yy = ay + ah - ah * k / 4
            o.append(f'<line x1="{ax}" y1="{yy:.1f}" x2="{ax + aw}" y2="{yy:.1f}" stroke="#eee"/>')
            o.append(f'<text x="{ax - 4}" y="{yy + 4:.1f}" font-size="10" fill="#666" text-anchor="end">{vmax * k / 4:.0f}</text>')
        for r in rows:
            xx = ax + aw * r["read_mb"] / xmax
            o.append(f'<text x="{xx:.1f}" y="{ay + ah + 14}" font-size="10" fill="#666" text-anchor="middle">{escape(r["size"])}</text>')
        o.append(f'<text x="{ax + aw / 2:.1f}" y="{ay + ah + 30}" font-size="11" text-anchor="middle">MB of weights read per token</text>')
        for rt, pts in series.items():
            pts = [(x, min(v, vmax)) for x, v in pts]
            if not pts:
                continue
            xy = " ".join(f"{ax + aw * x / xmax:.1f},{ay + ah - ah * v / vmax:.1f}" for x, v in pts)
            dash = ' stroke-dasharray="5,3"' if rt == "roofline" else ""
            o.append(f'<polyline points="{xy}" fill="none" stroke="{colors[rt]}" stroke-width="2"{dash}/>')
            for x, v in pts:
                o.append(f'<circle cx="{ax + aw * x / xmax:.1f}" cy="{ay + ah - ah * v / vmax:.1f}" r="3" fill="{colors[rt]}"/>')
        ly = py + 30
        for rt in series:
            o.append(f'<rect x="{ax + aw - 120}" y="{ly}" width="12" height="12" fill="{colors[rt]}"/>'
                     f'<text x="{ax + aw - 104}" y="{ly + 10}" font-size="11">{rt}{" (capped)" if rt == "roofline" else ""}</text>')
            ly += 16
    o.append("</svg>")
    return "\n".join(o)
