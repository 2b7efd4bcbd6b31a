"""The benchmark's pure pieces (no browser): figures, medians, the same-token check, the table and
the SVG chart, on synthetic runs. The browser part is `python3 build.py bench --quick` (minutes)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "bench"))

import bench  # noqa: E402
from chart import svg_chart  # noqa: E402


def fake_run(runtime: str, model: str, threads: int, run: int, decode: float, tokens: list[int]) -> dict:
    gen = lambda name, ttft, n: {"name": name, "prompt_tokens": 207 if name == "p200" else 1024, "new_tokens": n,  # noqa: E731
                                 "ttft_ms": ttft, "prefill_tok_s": 207 / (ttft / 1000), "decode_tok_s": decode,
                                 "token_ids": tokens[:n], **({"python_ms_per_token": 0.5} if runtime == "intab" else {})}
    r = {"runtime": runtime, "model": model, "threads": threads, "backend": "wasm", "run": run,
         "cold": {"loadMs": 20000 + run, "runs": [gen("p200", 900.0 + run, 128), gen("p1000", 5000.0, 16)]},
         "warm": {"loadMs": 4000.0, "runs": []},
         "download_bytes": 102_000_000 if runtime == "intab" else 542_000_000, "total_bytes": 0,
         "warm_download_bytes": 0, "warm_total_bytes": 0, "peak_rss_mb": 800.0, "renderer_vmhwm_mb": {}}
    r["figures"] = bench.figures_of(r)
    return r


def test_report_table_and_chart(capsys):
    toks = list(range(200))
    other = toks[:5] + [999] + toks[6:]
    raw = []
    for i in range(3):
        raw.append(fake_run("intab", "m", 2, i, 40.0 + i, toks))
        raw.append(fake_run("tjs", bench.COMPARATOR_ID, 2, i, 24.0, toks))
        raw.append(fake_run("ort", bench.COMPARATOR_ID, 2, i, 25.0, other))
        w = fake_run("wllama", "m", 2, i, 20.5, toks)
        w["cold"]["runs"][0]["token_ids"] = toks[:32]       # wllama's ids: a prefix of p200 only
        w["cold"]["runs"][0]["token_ids_prefix"] = True
        w["cold"]["runs"][1]["token_ids"] = []
        raw.append(w)
    args = argparse.Namespace(runs=3, out=Path("x"))
    plan = {"prompts": [{"name": "p200", "ids": [0] * 207, "max_tokens": 128}, {"name": "p1000", "ids": [0] * 1024, "max_tokens": 16}]}
    meta = {"chromium": "1", "webgpu_probe": {}, "cpus": 2, "platform": "x", "loadavg_before": (1, 1, 1),
            "loadavg_after": (1, 1, 1), "wall_s": 1, "date": "now"}
    report = bench.build_report(raw, [], plan, ["m"], [("wasm", 2)], list(bench.RUNTIMES), args, meta)
    s = report["groups"]["intab|m|wasm|2"]["summary"]
    assert s["decode_tok_s"]["median"] == 41.0 and s["decode_tok_s"]["min"] == 40.0 and s["decode_tok_s"]["max"] == 42.0
    assert abs(s["python_share_pct"]["median"] - 100 * 0.5 * 41 / 1000) < 1e-9
    by_rt = {c["runtime"]: c for c in report["same_tokens"]}
    assert by_rt["tjs"]["same"] and not by_rt["ort"]["same"] and by_rt["ort"]["first_difference_at"] == 5
    wl = [c for c in report["same_tokens"] if c["runtime"] == "wllama"]
    assert [(c["prompt"], c["same"], c["tokens"]) for c in wl] == [("p200", True, 32)] * 3
    bench.print_report(report)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| decode tok/s"))
    assert [c.strip() for c in row.strip("|").split("|")][1:] == ["41.0 [40.0-42.0]", "20.5 [20.5-20.5]", "24.0 [24.0-24.0]",
                                                                  "25.0 [25.0-25.0]", "2.00x", "1.71x", "1.64x"]
    assert "[PASS] decode tok/s >= 1.5x transformers.js" in out
    assert "[PASS] model download <= 110 MB" in out
    assert "same tokens as intab (m), bare ORT, 2t: no" in out
    assert "same tokens as intab (m), transformers.js, 2t: yes" in out
    assert "same tokens as intab (m), wllama, 2t: yes (3 generations, 96 tokens compared)" in out
    svg = svg_chart(report)
    assert svg.startswith("<svg") and "Decode, 128 tokens" in svg and "1.71x tjs" in svg and "2.00x wllama" in svg


def test_decode_against_context_in_the_table_and_chart(capsys):
    """--contexts: decode tok/s per context length, the 2k/short ratio against its target, a line chart."""
    raw = []
    for rt, model, speeds in (("intab", "m", {0: 60.0, 512: 55.0, 1024: 50.0, 2048: 45.0}),
                              ("tjs", bench.COMPARATOR_ID, {0: 24.0, 512: 20.0, 1024: 17.0, 2048: 12.0})):
        r = fake_run(rt, model, 2, 0, 40.0, list(range(200)))
        for n, v in speeds.items():
            r["cold"]["runs"].append({"name": f"ctx{n}", "prompt_tokens": n + 30, "new_tokens": 64, "ttft_ms": 100.0,
                                      "prefill_tok_s": 1.0, "decode_tok_s": v, "token_ids": [1] * 64})
        r["figures"] = bench.figures_of(r)
        raw.append(r)
    args = argparse.Namespace(runs=1, out=Path("x"))
    plan = {"prompts": [{"name": "p200", "ids": [0] * 207, "max_tokens": 128}, {"name": "ctx2048", "ids": [0] * 2048, "max_tokens": 64}]}
    meta = {"chromium": "1", "webgpu_probe": {}, "cpus": 2, "platform": "x", "loadavg_before": (1, 1, 1),
            "loadavg_after": (1, 1, 1), "wall_s": 1, "date": "now"}
    report = bench.build_report(raw, [], plan, ["m"], [("wasm", 2)], ["intab", "tjs"], args, meta)
    bench.print_report(report)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| decode tok/s at context 2048"))
    assert [c.strip() for c in row.strip("|").split("|")][1:4] == ["45.0", "12.0", "3.75x"]
    assert "[PASS] decode at context 2048 >= 0.7x decode at context 0 (issue 15): 0.75x" in out
    svg = svg_chart(report)
    assert "Decode tok/s vs context" in svg and svg.count("<polyline") == 2 and "2t: 0.75x" in svg


def test_scaling_rows_roofline_and_chart(capsys, tmp_path):
    """--sizes: bytes read per token from a real GGUF (untied: the embedding counts one row), the
    per-size ratios and roofline fractions, a failed intab size marked with its reason, the chart."""
    import scaling
    from models.synthetic import TINY, write_gguf

    g = write_gguf(TINY["tiny-llama3"], tmp_path / "t.gguf", say=lambda *_: None)
    b = scaling.bytes_per_token(g)
    from gguf import GGUFReader
    t = {x.name: int(x.n_bytes) for x in GGUFReader(str(g)).tensors}
    assert not b["tied"] and b["read_bytes"] == sum(t.values()) - t["token_embd.weight"] + t["token_embd.weight"] // 384

    info = {"135m": {"read_bytes": 100_000_000}, "1b": {"read_bytes": 800_000_000}}
    raw = []
    for size, rt, dec, tok in (("135m", "intab", 60.0, [1, 2, 3]), ("135m", "wllama", 20.0, [1, 2]), ("1b", "wllama", 4.0, [5])):
        r = fake_run(rt, "m", 2, 0, dec, list(range(10)))
        r["cold"]["runs"][0]["token_ids"] = tok
        r["cold"]["info"] = {"kernel": "intab"} if rt == "intab" else {}
        r["size"] = size
        raw.append(r)
    fails = [{"size": "1b", "runtime": "intab", "error": "IntabError: unknown block kind Q4_K (console: x)"}]
    rows = scaling.rows_of(["135m", "1b"], info, raw, fails, 32.0)
    assert rows[0]["roofline_tok_s"] == 320.0 and rows[0]["intab"]["roofline_frac"] == 60.0 / 320.0
    assert rows[0]["same_tokens"] == {"compared": 2, "first_difference_at": None, "prompt_tokens_match": None}
    report = {"meta": {"date": "now", "cpus": 2, "threads": 2, "loadavg_before": (1, 1, 1), "loadavg_after": (1, 1, 1),
                       "read_gb_s": 32.0, "sizes": ["135m", "1b"], "new_tokens": 64}, "rows": rows}
    scaling.print_scaling(report)
    out = capsys.readouterr().out
    line135 = next(x for x in out.splitlines() if x.startswith("| 135m"))
    cells = [c.strip() for c in line135.strip("|").split("|")]
    assert cells[3:8] == ["60.0", "20.0", "3.00x", "19%", "6%"] and cells[17] == "yes, 2"
    assert "intab failed: IntabError: unknown block kind Q4_K" in out
    svg = scaling.scaling_svg(report)
    assert svg.startswith("<svg") and svg.count("<polyline") == 5 and "Decode tok/s" in svg   # 2 panels x 2 runtimes + the roofline
