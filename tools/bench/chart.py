"""The benchmark's chart: an SVG drawn here, turned into a PNG by the same headless Chromium.

Why not matplotlib: the bench already has Chromium and Playwright; an SVG needs no extra package
(nothing to install into .venv, no network), and the SVG itself is kept next to the PNG.

One panel per figure; in each, a group of bars per backend/threads (intab variants, transformers.js,
bare ORT): the bar is the median, the whisker the [min-max] range, the label the median; under
the title, intab / comparator ratios; dashed lines mark the issue's targets. With --contexts, one
more panel draws decode tok/s against the context length, a line per runtime and thread count.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

PANELS = [
    ("download_mb", "Model download (MB)", False, "{:.0f}"),
    ("cold_load_s", "Cold load, open to ready (s)", False, "{:.1f}"),
    ("warm_load_s", "Warm load, model cached (s)", False, "{:.1f}"),
    ("peak_rss_mb", "Peak renderer RSS (MB)", False, "{:.0f}"),
    ("ttft_p200_ms", "TTFT, ~200-token prompt (ms)", False, "{:.0f}"),
    ("ttft_p1000_ms", "TTFT, ~1000-token prompt (ms)", False, "{:.0f}"),
    ("decode_tok_s", "Decode, 128 tokens (tok/s)", True, "{:.1f}"),
    ("prefill_p1000_tok_s", "Prefill, ~1000 tokens (tok/s)", True, "{:.0f}"),
]
TARGET_LINES = {"download_mb": 110, "warm_load_s": 5, "peak_rss_mb": 1000, "ttft_p200_ms": 1200}
COLORS = ["#1f6fd1", "#18a37a", "#7b4fd6", "#0b9bb5", "#3a5f9f"]   # intab variants
COMP_COLORS = {"wllama": "#c2185b", "tjs": "#e8871e", "ort": "#8a8f98"}
W, H = 400, 300          # panel
COLS = 4


def _tick(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2g}"


def _series(report: dict) -> list[tuple[str, str, str]]:
    """(runtime, model, label) in drawing order."""
    meta = report["meta"]
    out = [("intab", v, f"intab {v}") for v in meta["variants"] if "intab" in meta["runtimes"]]
    if "wllama" in meta["runtimes"]:
        out.append(("wllama", meta["variants"][0], "wllama"))
    for rt, label in (("tjs", "transformers.js"), ("ort", "bare ORT")):
        if rt in meta["runtimes"]:
            out.append((rt, meta["comparator_model"], label))
    return out


def _contexts(groups: dict) -> list[int]:
    return sorted({int(k[len("decode_ctx"):-len("_tok_s")]) for g in groups.values() for k in g["summary"]
                   if k.startswith("decode_ctx") and g["summary"][k]})


def _context_panel(o: list, px: float, py: float, report: dict, series, configs, color) -> None:
    """Decode tok/s (median) against the context length: solid lines for 2 threads, dashed for 1."""
    groups, meta = report["groups"], report["meta"]
    ctxs = _contexts(groups)
    o.append(f'<text x="{px + 8}" y="{py + 16}" font-size="14" font-weight="bold">Decode tok/s vs context'
             f'<tspan font-weight="normal" fill="#666" font-size="11"> (higher is better)</tspan></text>')
    lines = []
    for b, t in configs:
        for rt, m, _ in series:
            g = groups.get(f"{rt}|{m}|{b}|{t}")
            pts = [(c, g["summary"].get(f"decode_ctx{c}_tok_s")) for c in ctxs] if g else []
            pts = [(c, s["median"]) for c, s in pts if s]
            if pts:
                lines.append(((rt, m), b, t, pts))
    it = [ln for ln in lines if ln[0][0] == "intab"]
    if it:
        parts = [f"{t}t: {pts[-1][1] / pts[0][1]:.2f}x" for _, b, t, pts in it if len(pts) > 1 and pts[0][1]]
        if parts:
            o.append(f'<text x="{px + 8}" y="{py + 33}" font-size="11" fill="#1f3f7a">intab longest/shortest context: '
                     f'{escape(" | ".join(parts))} (target >= 0.7x)</text>')
    ax, ay, aw, ah = px + 44, py + 48, W - 60, H - 88
    vmax = max([v for *_, pts in lines for _, v in pts] + [1]) * 1.15
    cmax = max(ctxs + [1])
    o.append(f'<line x1="{ax}" y1="{ay + ah}" x2="{ax + aw}" y2="{ay + ah}" stroke="#333"/>')
    for k in range(5):
        yy = ay + ah - ah * k / 4
        o.append(f'<line x1="{ax}" y1="{yy:.1f}" x2="{ax + aw}" y2="{yy:.1f}" stroke="#eee"/>')
        o.append(f'<text x="{ax - 4}" y="{yy + 4:.1f}" font-size="10" fill="#666" text-anchor="end">{_tick(vmax * k / 4)}</text>')
    for c in ctxs:
        xx = ax + aw * c / cmax
        o.append(f'<text x="{xx:.1f}" y="{ay + ah + 14}" font-size="10" fill="#666" text-anchor="middle">{c}</text>')
    o.append(f'<text x="{ax + aw / 2:.1f}" y="{ay + ah + 28}" font-size="11" text-anchor="middle">context (tokens), '
             f'solid: 2+ threads, dashed: 1</text>')
    for key, b, t, pts in lines:
        xy = " ".join(f"{ax + aw * c / cmax:.1f},{ay + ah - ah * v / vmax:.1f}" for c, v in pts)
        dash = ' stroke-dasharray="5,3"' if t == 1 else ""
        o.append(f'<polyline points="{xy}" fill="none" stroke="{color[key]}" stroke-width="2"{dash}/>')
        for c, v in pts:
            o.append(f'<circle cx="{ax + aw * c / cmax:.1f}" cy="{ay + ah - ah * v / vmax:.1f}" r="2.5" fill="{color[key]}"/>')


def svg_chart(report: dict) -> str:
    meta, groups = report["meta"], report["groups"]
    series = _series(report)
    configs = [(b, t) for b, t in meta["backends"]]
    panels = [p for p in PANELS if any((g["summary"].get(p[0]) or None) for g in groups.values())]
    with_contexts = bool(_contexts(groups))
    rows = (len(panels) + with_contexts + COLS - 1) // COLS
    top = 92
    width, height = COLS * W + 20, top + rows * H + 20
    color = {}
    for i, (rt, m, _) in enumerate(series):
        color[(rt, m)] = COLORS[i % len(COLORS)] if rt == "intab" else COMP_COLORS[rt]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="DejaVu Sans, Arial, sans-serif">',
         f'<rect width="{width}" height="{height}" fill="white"/>']
    title = f"intab vs wllama, transformers.js, bare onnxruntime-web - SmolLM2-135M-Instruct, headless Chromium {meta.get('chromium')}"
    sub = (f"{meta['date']} - {meta['cpus']} CPUs, load avg {meta['loadavg_before'][0]:.1f} -> {meta['loadavg_after'][0]:.1f} - "
           f"median of {meta['args']['runs']} run(s), whiskers min-max - prompts "
           + ", ".join(f"{p['name']}={p['tokens']} tok" for p in meta["prompts"]))
    o.append(f'<text x="14" y="26" font-size="18" font-weight="bold">{escape(title)}</text>')
    o.append(f'<text x="14" y="46" font-size="12" fill="#444">{escape(sub)}</text>')
    x = 14
    for rt, m, label in series:
        o.append(f'<rect x="{x}" y="60" width="14" height="14" fill="{color[(rt, m)]}"/>')
        o.append(f'<text x="{x + 19}" y="72" font-size="13">{escape(label)}</text>')
        x += 30 + 7.5 * len(label)
    o.append(f'<text x="{x + 10}" y="72" font-size="12" fill="#c0392b">- - target (issue 4)</text>')

    for pi, (key, ptitle, higher, f) in enumerate(panels):
        px, py = 10 + (pi % COLS) * W, top + (pi // COLS) * H
        o.append(f'<text x="{px + 8}" y="{py + 16}" font-size="14" font-weight="bold">{escape(ptitle)}'
                 f'<tspan font-weight="normal" fill="#666" font-size="11"> ({"higher" if higher else "lower"} is better)</tspan></text>')
        # ratios line
        ratio_parts = []
        for b, t in configs:
            it = groups.get(f"intab|{meta['variants'][0]}|{b}|{t}")
            s = it and it["summary"].get(key)
            for rt, short in (("wllama", "wllama"), ("tjs", "tjs"), ("ort", "ORT")):
                c = groups.get(f"{rt}|{meta['variants'][0] if rt == 'wllama' else meta['comparator_model']}|{b}|{t}")
                cs = c and c["summary"].get(key)
                if s and cs and cs["median"]:
                    ratio_parts.append(f"{t}t: {s['median'] / cs['median']:.2f}x {short}")
        if ratio_parts:
            o.append(f'<text x="{px + 8}" y="{py + 33}" font-size="11" fill="#1f3f7a">intab/ {escape(" | ".join(ratio_parts))}</text>')
        # plot area
        ax, ay, aw, ah = px + 44, py + 48, W - 60, H - 88
        vals = []
        for b, t in configs:
            for rt, m, _ in series:
                g = groups.get(f"{rt}|{m}|{b}|{t}")
                s = g and g["summary"].get(key)
                if s:
                    vals.append(s["max"])
        if not vals:
            continue
        vmax = max(vals + [TARGET_LINES.get(key, 0)]) * 1.15 or 1
        o.append(f'<line x1="{ax}" y1="{ay + ah}" x2="{ax + aw}" y2="{ay + ah}" stroke="#333"/>')
        for k in range(5):
            v = vmax * k / 4
            yy = ay + ah - ah * k / 4
            o.append(f'<line x1="{ax}" y1="{yy:.1f}" x2="{ax + aw}" y2="{yy:.1f}" stroke="#eee"/>')
            o.append(f'<text x="{ax - 4}" y="{yy + 4:.1f}" font-size="10" fill="#666" text-anchor="end">{_tick(v)}</text>')
        gw = aw / max(1, len(configs))
        bw = min(34, (gw - 16) / max(1, len(series)))
        for ci, (b, t) in enumerate(configs):
            gx = ax + ci * gw + (gw - bw * len(series)) / 2
            o.append(f'<text x="{ax + ci * gw + gw / 2:.1f}" y="{ay + ah + 16}" font-size="12" text-anchor="middle">'
                     f'{"WASM" if b == "wasm" else "WebGPU"} {t} thread{"s" if t > 1 else ""}</text>')
            for si, (rt, m, _) in enumerate(series):
                g = groups.get(f"{rt}|{m}|{b}|{t}")
                s = g and g["summary"].get(key)
                bx = gx + si * bw
                if not s:
                    continue
                hgt = ah * s["median"] / vmax
                o.append(f'<rect x="{bx + 2:.1f}" y="{ay + ah - hgt:.1f}" width="{bw - 4:.1f}" height="{hgt:.1f}" fill="{color[(rt, m)]}"/>')
                if s["n"] > 1:
                    y1, y2 = ay + ah - ah * s["min"] / vmax, ay + ah - ah * s["max"] / vmax
                    cx = bx + bw / 2
                    o.append(f'<line x1="{cx:.1f}" y1="{y1:.1f}" x2="{cx:.1f}" y2="{y2:.1f}" stroke="#222" stroke-width="1.2"/>')
                    o.append(f'<line x1="{cx - 4:.1f}" y1="{y2:.1f}" x2="{cx + 4:.1f}" y2="{y2:.1f}" stroke="#222"/>')
                    o.append(f'<line x1="{cx - 4:.1f}" y1="{y1:.1f}" x2="{cx + 4:.1f}" y2="{y1:.1f}" stroke="#222"/>')
                ly = min(ay + ah - hgt, ay + ah - ah * s["max"] / vmax) - 4
                o.append(f'<text x="{bx + bw / 2:.1f}" y="{ly:.1f}" font-size="10" text-anchor="middle">{f.format(s["median"])}</text>')
            if key == "decode_tok_s":   # target: 1.5x transformers.js, per group
                c = groups.get(f"tjs|{meta['comparator_model']}|{b}|{t}")
                cs = c and c["summary"].get(key)
                if cs:
                    yy = ay + ah - ah * min(1.5 * cs["median"], vmax) / vmax
                    o.append(f'<line x1="{ax + ci * gw + 4:.1f}" y1="{yy:.1f}" x2="{ax + (ci + 1) * gw - 4:.1f}" y2="{yy:.1f}" '
                             f'stroke="#c0392b" stroke-dasharray="5,4"/>')
        if key in TARGET_LINES:
            yy = ay + ah - ah * TARGET_LINES[key] / vmax
            o.append(f'<line x1="{ax}" y1="{yy:.1f}" x2="{ax + aw}" y2="{yy:.1f}" stroke="#c0392b" stroke-dasharray="5,4"/>')
    if with_contexts:
        pi = len(panels)
        _context_panel(o, 10 + (pi % COLS) * W, top + (pi // COLS) * H, report, series, configs, color)
    o.append("</svg>")
    return "\n".join(o)


def render_chart(report: dict, png: Path) -> Path:
    """Write <png>.svg and <png>: the benchmark's chart."""
    return svg_to_png(svg_chart(report), png)


def svg_to_png(svg: str, png: Path) -> Path:
    """Write <png>.svg and <png> (a screenshot of the SVG in headless Chromium)."""
    from playwright.sync_api import sync_playwright

    from bench import BASE_ARGS, CHROMIUM

    svg_path = png.with_suffix(".svg")
    svg_path.write_text(svg, encoding="utf-8")
    w = int(svg.split('width="', 1)[1].split('"', 1)[0])
    h = int(svg.split('height="', 1)[1].split('"', 1)[0])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        try:
            page = browser.new_page(viewport={"width": w, "height": h})
            page.goto(svg_path.resolve().as_uri())
            page.screenshot(path=str(png), full_page=False)
        finally:
            browser.close()
    return png
