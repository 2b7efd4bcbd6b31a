"""intab's benchmark: the real pages in headless Chromium, with comparators in the same session.

    python3 build.py bench [--variants a,b] [--runs 3] [--threads 1,2] [--quick] [--webgpu]
                           [--contexts 0,512,1024,2048 [--context-new-tokens 64]]

Per weight variant and backend (WASM 1 and 2 threads; WebGPU only where a non-fallback adapter
exists, or with --webgpu) it measures intab (static/worker.mjs driven by tools/bench/pages/intab.mjs)
and, interleaved in the same run, wllama (@wllama/wllama, llama.cpp in wasm: pages/wllama.mjs) on
the GGUF the first variant's weights come from, transformers.js (@huggingface/transformers, fp32,
device wasm) and a bare onnxruntime-web greedy loop (pages/ort.mjs) on the same network in
transformers.js' layout. Each measurement opens a fresh browser (empty cache, so the peak RSS is per run):

  cold:  page open -> ready (model downloaded), then the ~200-token prompt with 128 greedy tokens
         (EOS ignored) and the ~1,000-token prompt; bytes of the model files counted by the server;
         peak RSS = the largest VmHWM of the browser's renderer processes (page + workers + wasm).
  warm:  a second page in the same profile: page open -> ready (intab: the model from Cache Storage).

--contexts adds one prompt per context length (ctx<N>: the ~1000-token passage repeated and cut to
N tokens, chat template included; ctx0 a one-line question) with --context-new-tokens greedy tokens
each, so that decode tok/s can be read against the context the step attends to (issue 15: decode
that holds up as a conversation grows); the chart draws it as lines.

Definitions follow ../shared/notes/anchors.md: TTFT = generate call (prompt tokenized) -> token 1;
prefill tok/s = prompt tokens / TTFT; decode tok/s = 127 / (time of token 128 - time of token 1).
intab's figures come from the engine's own timers (the 'done' result); page-side times are kept
in the JSON. Medians and [min-max] over --runs; JSON and a PNG chart go to bench-results/.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache"
STATIC = ROOT / "static"
SITE = CACHE / "bench" / "site"
RESULTS = ROOT / "bench-results"
CHROMIUM = os.environ.get("INTAB_CHROMIUM", "/usr/lib/chromium/chromium")
BASE_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]

for p in (ROOT, ROOT / "web", ROOT / "py", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from comparator_model import COMPARATOR_ID, build_comparator_model  # noqa: E402

RUNTIMES = ("intab", "wllama", "tjs", "ort")
LABEL = {"intab": "intab", "wllama": "wllama", "tjs": "transformers.js", "ort": "bare ORT"}
COMPARATORS = ("wllama", "tjs", "ort")   # the table's columns after intab's, in this order
TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json")

# Targets of issue 4 (WASM, 2 threads). (key, label, test, description)
TARGETS = [
    ("download_mb", "model download", lambda v, c: v <= 110, "<= 110 MB"),
    ("decode_tok_s", "decode tok/s", lambda v, c: c is not None and v >= 1.5 * c, ">= 1.5x transformers.js"),
    ("ttft_p200_ms", "TTFT, ~200-token prompt", lambda v, c: v <= 1200, "<= 1.2 s"),
    ("peak_rss_mb", "peak renderer RSS", lambda v, c: v <= 1000, "<= 1 GB"),
    ("warm_load_s", "warm start to ready", lambda v, c: v <= 5, "<= 5 s"),
]


def markdown_table(head: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


# ------------------------------------------------------------------------------------ the site
def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and os.readlink(link) == str(target):
            return
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(target)


def tjs_ort_dist() -> Path:
    """transformers.js' own onnxruntime-web (nested when its version differs from intab's)."""
    nm = ROOT / "node_modules"
    for d in (nm / "@huggingface" / "transformers" / "node_modules" / "onnxruntime-web" / "dist", nm / "onnxruntime-web" / "dist"):
        if (d / "ort-wasm-simd-threaded.asyncify.wasm").exists():
            return d
    raise FileNotFoundError("transformers.js' onnxruntime-web files are missing: run npm ci")


BIG = 20 << 20   # files at least this big are hard-linked into the snapshot, smaller ones copied


def _snapshot_file(src: Path, dst: Path) -> None:
    """dst = src, frozen: big files are hard links (the builds replace them by rename, so the
    link keeps this version), small ones copies (the builds rewrite some of them in place)."""
    dst.unlink(missing_ok=True)
    if src.stat().st_size >= BIG:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _snapshot_tree(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        if f.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        elif f.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            _snapshot_file(f, dst / rel)


def wllama_dist() -> Path:
    d = ROOT / "node_modules" / "@wllama" / "wllama" / "esm"
    if not (d / "wasm" / "wllama.wasm").exists():
        raise FileNotFoundError("@wllama/wllama is missing: run npm ci (it is a devDependency)")
    return d


def assemble_site(variant_dirs: dict[str, Path], comparator_dir: Path, plan: dict,
                  ggufs: dict[str, Path] | None = None, plans: dict[str, dict] | None = None) -> Path:
    """SITE, a frozen snapshot (other people rebuild static/ and the model folders while a bench
    runs): static/'s entries (the app as built; ~70 MB copied), models/ with the variants and
    their index.json, the comparator model, transformers.js' and wllama's files, the GGUFs
    wllama loads (gguf/<model id>.gguf, hard links of the files intab's weights come from),
    the bench pages, the plan (and per-model plans, bench-data/plan-<id>.json, for --sizes)."""
    SITE.mkdir(parents=True, exist_ok=True)
    keep = {"models", "cmp", "tjs", "tjs-ort", "wllama", "gguf", "bench", "bench-data"}
    for old in SITE.iterdir():
        if old.name not in keep and not (STATIC / old.name).exists():
            old.unlink() if old.is_symlink() or old.is_file() else shutil.rmtree(old)
    for entry in STATIC.iterdir():
        if entry.name == "models":
            continue
        if entry.is_dir():
            _snapshot_tree(entry, SITE / entry.name)
        else:
            (SITE / entry.name).unlink(missing_ok=True)
            shutil.copy2(entry, SITE / entry.name)
    models = SITE / "models"
    if models.is_symlink() or models.exists():
        models.unlink() if models.is_symlink() else shutil.rmtree(models)
    models.mkdir()
    for mid, d in variant_dirs.items():
        _snapshot_tree(d, models / mid)
        manifest = json.loads((models / mid / "manifest.json").read_text())
        for f in manifest["files"]:
            p = models / mid / f["name"]
            if not p.exists() or p.stat().st_size != f["size"]:
                raise RuntimeError(f"{d} changed while it was copied (someone is rebuilding it?); run the bench again")
    (models / "index.json").write_text(json.dumps({"models": list(variant_dirs)}, indent=2) + "\n")
    (SITE / "cmp").mkdir(exist_ok=True)
    _link(comparator_dir.resolve(), SITE / "cmp" / COMPARATOR_ID)
    _link((ROOT / "node_modules" / "@huggingface" / "transformers" / "dist").resolve(), SITE / "tjs")
    _link(tjs_ort_dist().resolve(), SITE / "tjs-ort")
    _link(wllama_dist().resolve(), SITE / "wllama")
    gg = SITE / "gguf"
    if gg.is_symlink() or gg.is_file():
        gg.unlink()
    gg.mkdir(exist_ok=True)
    for mid, path in (ggufs or {}).items():
        _snapshot_file(path, gg / f"{mid}.gguf")
    _link((HERE / "pages").resolve(), SITE / "bench")
    (SITE / "bench-data").mkdir(exist_ok=True)
    (SITE / "bench-data" / "plan.json").write_text(json.dumps(plan))
    for mid, pl in (plans or {}).items():
        (SITE / "bench-data" / f"plan-{mid}.json").write_text(json.dumps(pl))
    return SITE


def context_prompt(engine, target: int, passage: str) -> tuple[str, list[int]]:
    """A user message whose prompt (chat template included) is about `target` tokens: the passage
    repeated and cut at a word (binary search on the word count). target 0: a one-line question."""
    if target <= 0:
        content = "Tell me three facts about lighthouses."
        return content, engine.prompt_ids([{"role": "user", "content": content}])
    words = passage.split()
    words = (words * (target // max(1, len(words) // 2) + 2))
    lo, hi = 1, len(words)
    while lo < hi:                    # the most words whose prompt stays within target
        mid = (lo + hi + 1) // 2
        if len(engine.prompt_ids([{"role": "user", "content": " ".join(words[:mid])}])) <= target:
            lo = mid
        else:
            hi = mid - 1
    content = " ".join(words[:lo])
    return content, engine.prompt_ids([{"role": "user", "content": content}])


def make_plan(default_dir: Path, prompt_tokens: int, long_tokens: int, quick: bool,
              contexts: tuple[int, ...] = (), context_tokens: int = 64, only: tuple[str, ...] = ()) -> dict:
    """Prompts with their token ids from intab's own tokenizer and template (CPython, the same code
    the worker runs): the bare ORT loop feeds these ids; the counts go into the report."""
    from intab.engine import Engine

    files = {n: (default_dir / n).read_text(encoding="utf-8") for n in TEXT_FILES}
    engine = Engine.from_files(files, None)
    data = json.loads((HERE / "prompts.json").read_text(encoding="utf-8"))
    prompts = []
    for p in data["prompts"]:
        if (quick and p["name"] != "p200") or (only and p["name"] not in only):
            continue
        if engine.template is None:   # a base model (the synthetic shapes): plain text completion
            ids, text, kind = engine.completion_ids(p["content"]), p["content"], "complete"
        else:
            msgs = [{"role": "user", "content": p["content"]}]
            ids, text, kind = engine.prompt_ids(msgs), engine.apply_chat_template(msgs), "chat"
        prompts.append({"name": p["name"], "content": p["content"], "ids": ids, "text": text, "kind": kind,
                        "max_tokens": prompt_tokens if p["name"] == "p200" else long_tokens})
    passage = next(p["content"] for p in data["prompts"] if p["name"] == "p1000")
    for n in contexts:
        content, ids = context_prompt(engine, n, passage)
        prompts.append({"name": f"ctx{n}", "content": content, "ids": ids, "max_tokens": context_tokens,
                        "text": engine.apply_chat_template([{"role": "user", "content": content}])})
    return {"prompts": prompts}


# ------------------------------------------------------------------------------------ the server
class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, int]] = []

    def add(self, path: str, n: int) -> None:
        with self.lock:
            self.log.append((path, n))

    def mark(self) -> int:
        with self.lock:
            return len(self.log)

    def since(self, mark: int) -> list[tuple[str, int]]:
        with self.lock:
            return list(self.log[mark:])


def make_bench_server(root: Path, counter: Counter):
    """web/serve.py's handler (COOP/COEP/CORP, strict CSP), counting the bytes of every response
    body. The comparator pages (bench/tjs.*, bench/ort.*) and transformers.js' files go without
    the CSP: transformers.js loads ORT's wasm glue from a blob: URL, which the app's CSP refuses.
    wllama's page goes without it too (its worker is a blob: module built from a string).
    intab's page, worker and runtime files keep the app's headers unchanged."""
    from http.server import ThreadingHTTPServer

    import serve as intab_serve

    relaxed_prefixes = ("/bench/tjs.", "/bench/ort.", "/bench/wllama.", "/tjs/", "/tjs-ort/", "/wllama/")

    class Handler(intab_serve.IntabHandler):
        def end_headers(self) -> None:
            relaxed = self.path.split("?")[0].startswith(relaxed_prefixes)
            for name, value in intab_serve.EXTRA_HEADERS.items():
                if relaxed and name == "Content-Security-Policy":
                    continue
                self.send_header(name, value)
            self.send_header("Cache-Control", "no-cache")
            SimpleHTTPRequestHandler.end_headers(self)

        def copyfile(self, source, outputfile) -> None:
            n = 0
            while chunk := source.read(1 << 20):
                outputfile.write(chunk)
                n += len(chunk)
            counter.add(self.path.split("?")[0], n)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------------------------------ memory
def renderer_pids() -> list[int]:
    """Chromium renderer processes among this process's descendants."""
    parent: dict[int, int] = {}
    cmd: dict[int, str] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            cmd[int(d)] = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    me = os.getpid()

    def descends(pid: int) -> bool:
        seen = 0
        while pid in parent and seen < 64:
            pid = parent[pid]
            if pid == me:
                return True
            seen += 1
        return False

    return [p for p, c in cmd.items() if "--type=renderer" in c and descends(p)]


def proc_status_bytes(pid: int, field: str) -> int | None:
    """A memory field of /proc/<pid>/status (VmHWM: peak resident, VmRSS: resident now) in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def vm_hwm_mb(pid: int) -> float | None:
    b = proc_status_bytes(pid, "VmHWM")
    return None if b is None else b / 1e6


# ------------------------------------------------------------------------------------ one run
class Bench:
    def __init__(self, pw, base_url: str, counter: Counter, timeout_s: float) -> None:
        self.pw, self.base, self.counter, self.timeout_ms = pw, base_url, counter, timeout_s * 1000

    def _page_result(self, page, url: str) -> dict:
        page.goto(url)
        page.wait_for_function("() => ['done', 'error'].includes(document.body.dataset.bench)",
                               timeout=self.timeout_ms, polling=250)
        res = page.evaluate("() => window.benchResult")
        if res.get("error"):
            raise RuntimeError(res["error"])
        return res

    def run(self, runtime: str, model: str, threads: int, backend: str = "wasm", plan: str = "") -> dict:
        """Cold visit (load + generations) and warm visit, in a fresh browser."""
        args = BASE_ARGS + (["--enable-unsafe-webgpu"] if backend == "webgpu" else [])
        browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            console: list[str] = []   # warnings and errors of the page and its workers, kept in the JSON
            on_console = lambda m: console.append(f"{m.type}: {m.text}"[:500]) if m.type in ("error", "warning") else None  # noqa: E731
            page.on("console", on_console)
            url = f"{self.base}bench/{runtime}.html?model={model}&threads={threads}&backend={backend}"
            if runtime == "intab":
                url += f"&memory={getattr(self, 'memory', 'fast')}&kernel={getattr(self, 'kernel', 'auto')}"
            if plan:
                url += f"&plan={plan}"
            mark = self.counter.mark()
            try:
                cold = self._page_result(page, url + "&gen=1")
            except Exception as e:
                raise RuntimeError(f"{e} (console: {' | '.join(console[-5:])})") from None
            rss = {p: vm_hwm_mb(p) for p in renderer_pids()}
            cold_log = self.counter.since(mark)
            page.close()
            page = ctx.new_page()
            page.on("console", on_console)
            mark = self.counter.mark()
            warm = self._page_result(page, url + "&gen=0")
            warm_log = self.counter.since(mark)
            page.close()
        finally:
            browser.close()
        prefix = {"intab": f"/models/{model}/", "wllama": f"/gguf/{model}."}.get(runtime, f"/cmp/{model}/")
        model_bytes = lambda log: sum(n for p, n in log if p.startswith(prefix))  # noqa: E731
        return {
            "runtime": runtime, "model": model, "threads": threads, "backend": backend,
            "cold": cold, "warm": warm,
            "download_bytes": model_bytes(cold_log), "total_bytes": sum(n for _, n in cold_log),
            "warm_download_bytes": model_bytes(warm_log), "warm_total_bytes": sum(n for _, n in warm_log),
            "renderer_vmhwm_mb": {str(k): v for k, v in rss.items()},
            "peak_rss_mb": max((v for v in rss.values() if v), default=None),
            "console": console[-40:],
        }


def figures_of(run: dict) -> dict:
    """The reported figures of one run (None where not measured)."""
    f = {"download_mb": run["download_bytes"] / 1e6, "cold_load_s": run["cold"]["loadMs"] / 1000,
         "warm_load_s": run["warm"]["loadMs"] / 1000, "warm_download_mb": run["warm_download_bytes"] / 1e6,
         "peak_rss_mb": run["peak_rss_mb"]}
    for g in run["cold"]["runs"]:
        tag = g["name"]
        f[f"ttft_{tag}_ms"] = g["ttft_ms"]
        f[f"prefill_{tag}_tok_s"] = g["prefill_tok_s"]
        if tag.startswith("ctx"):
            f[f"decode_{tag}_tok_s"] = g["decode_tok_s"]
        if tag == "p200":
            f["decode_tok_s"] = g["decode_tok_s"]
            if g.get("python_ms_per_token") is not None:
                f["python_ms_per_token"] = g["python_ms_per_token"]
                if g["decode_tok_s"]:
                    f["python_share_pct"] = 100 * g["python_ms_per_token"] * g["decode_tok_s"] / 1000
            if g.get("page"):
                f["page_ttft_p200_ms"] = g["page"]["ttft_ms"]
                f["page_decode_tok_s"] = g["page"]["decode_tok_s"]
    return f


# (key, label, unit, higher is better, format)
FIGURES = [
    ("download_mb", "model download", "MB", False, "{:.1f}"),
    ("cold_load_s", "cold load (open -> ready)", "s", False, "{:.2f}"),
    ("warm_load_s", "warm load (cached)", "s", False, "{:.2f}"),
    ("warm_download_mb", "warm-visit model bytes", "MB", False, "{:.1f}"),
    ("ttft_p200_ms", "TTFT ~200-tok prompt", "ms", False, "{:.0f}"),
    ("prefill_p200_tok_s", "prefill ~200 tok/s", "tok/s", True, "{:.1f}"),
    ("ttft_p1000_ms", "TTFT ~1000-tok prompt", "ms", False, "{:.0f}"),
    ("prefill_p1000_tok_s", "prefill ~1000 tok/s", "tok/s", True, "{:.1f}"),
    ("decode_tok_s", "decode tok/s (128 tok)", "tok/s", True, "{:.1f}"),
    *[(f"decode_ctx{n}_tok_s", f"decode tok/s at context {n}", "tok/s", True, "{:.1f}") for n in (0, 512, 1024, 2048, 4096)],
    ("python_ms_per_token", "Python ms/token", "ms", False, "{:.2f}"),
    ("python_share_pct", "Python share of a step", "%", False, "{:.1f}"),
    ("peak_rss_mb", "peak renderer RSS", "MB", False, "{:.0f}"),
]


def summarize(values: list) -> dict | None:
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v), "values": v}


def fmt_stat(s: dict | None, f: str) -> str:
    if not s:
        return "-"
    if s["n"] == 1:
        return f.format(s["median"])
    return f"{f.format(s['median'])} [{f.format(s['min'])}-{f.format(s['max'])}]"


# ------------------------------------------------------------------------------------ main
def probe_webgpu(pw, base_url: str) -> dict:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS + ["--enable-unsafe-webgpu"])
    try:
        page = browser.new_page()
        page.goto(base_url + "bench/blank.html")
        return page.evaluate("""async () => {
            if (!navigator.gpu) return {adapter: false};
            const a = await navigator.gpu.requestAdapter();
            if (!a) return {adapter: false};
            const i = a.info || {};
            return {adapter: true, fallback: !!(i.isFallbackAdapter ?? a.isFallbackAdapter),
                    vendor: i.vendor || '', architecture: i.architecture || '', description: i.description || ''};
        }""")
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> int:
    from models.prepare import prepare
    from models.recipes import DEFAULT, RECIPES
    from models.source import fetch_gguf

    ap = argparse.ArgumentParser(prog="build.py bench", description="Benchmark intab against wllama, transformers.js and a bare ORT loop.")
    ap.add_argument("--variants", default=DEFAULT.model_id, help=f"comma-separated recipe ids (default {DEFAULT.model_id}); known: {', '.join(RECIPES)}")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="WASM thread counts (default 1,2)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="subset of " + ",".join(RUNTIMES))
    ap.add_argument("--quick", action="store_true", help="1 run, 2 threads, the ~200-token prompt only: a smoke test")
    ap.add_argument("--webgpu", action="store_true", help="also run intab on WebGPU even when the adapter is a software fallback")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens generated after the ~200-token prompt")
    ap.add_argument("--long-new-tokens", type=int, default=16, help="tokens generated after the ~1000-token prompt")
    ap.add_argument("--contexts", default="", help="e.g. 0,512,1024,2048: decode tok/s after prompts of these lengths")
    ap.add_argument("--context-new-tokens", type=int, default=64, help="tokens generated at each --contexts length")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per page (load + generations)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--kernel", default="auto", choices=("auto", "intab", "ort"),
                    help="intab's WASM kernel (worker load option): intab's own (web/kernel) or onnxruntime-web")
    ap.add_argument("--memory", default="fast", choices=("fast", "low"),
                    help="intab's memory mode (worker load option): low = no weight pre-packing, less RAM, slower")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.threads = 1, "2"
    threads = [int(t) for t in args.threads.split(",") if t]
    runtimes = [r for r in args.runtimes.split(",") if r]
    if bad := [r for r in runtimes if r not in RUNTIMES]:
        ap.error(f"unknown runtime(s) {bad}: use {', '.join(RUNTIMES)}")
    variants = [v for v in args.variants.split(",") if v]
    if bad := [v for v in variants if v not in RECIPES]:
        ap.error(f"unknown variant(s) {bad}; models/recipes.py has {', '.join(RECIPES)}")

    # Models: each variant through prepare(); the comparators' model from the default recipe's GGUF.
    variant_dirs = {v: prepare(RECIPES[v], CACHE) for v in variants}
    default_dir = prepare(DEFAULT, CACHE)
    comparator_dir = build_comparator_model(ROOT, CACHE, default_dir, say)
    contexts = tuple(int(c) for c in args.contexts.split(",") if c.strip())
    plan = make_plan(default_dir, args.new_tokens, args.long_new_tokens, args.quick, contexts, args.context_new_tokens)
    for p in plan["prompts"]:
        say(f"prompt {p['name']}: {len(p['ids'])} tokens (intab's tokenizer, chat template applied), {p['max_tokens']} new tokens")
    # wllama loads the GGUF the first variant's weights come from (the fused/f32 variants share it).
    site = assemble_site(variant_dirs, comparator_dir, plan, {variants[0]: fetch_gguf(RECIPES[variants[0]], CACHE)})
    counter = Counter()
    server = make_bench_server(site, counter)
    base = "http://127.0.0.1:%d/" % server.server_address[1]
    say(f"serving {site} at {base}")

    from playwright.sync_api import sync_playwright

    t_start = time.time()
    load_before = os.getloadavg()
    raw: list[dict] = []
    failures: list[dict] = []
    with sync_playwright() as pw:
        chromium_version = None
        b = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        chromium_version = b.version
        b.close()
        gpu = probe_webgpu(pw, base)
        backends = [("wasm", t) for t in threads]
        if gpu.get("adapter") and (not gpu.get("fallback") or args.webgpu):
            backends.append(("webgpu", 1))
            say(f"WebGPU: adapter {gpu} -> measuring intab on WebGPU")
        else:
            why = "no WebGPU adapter" if not gpu.get("adapter") else \
                f"the WebGPU adapter is a software fallback ({gpu.get('vendor')} {gpu.get('architecture')} {gpu.get('description')}".strip() + "); --webgpu forces it"
            say(f"WebGPU skipped: {why}")
        bench = Bench(pw, base, counter, args.timeout)
        bench.memory = args.memory
        bench.kernel = args.kernel
        jobs = []
        for backend, t in backends:
            for v in variants:
                if "intab" in runtimes:
                    jobs.append(("intab", v, t, backend))
            if backend == "wasm":   # the comparators on WASM only (bare ORT is the WASM bundle)
                if "wllama" in runtimes:
                    jobs.append(("wllama", variants[0], t, backend))
                for r in ("tjs", "ort"):
                    if r in runtimes:
                        jobs.append((r, COMPARATOR_ID, t, backend))
        # Interleaved: every run index measures each job once, in a rotated order, so drift in
        # the machine's load hits every runtime alike.
        for i in range(args.runs):
            order = jobs[i % len(jobs):] + jobs[:i % len(jobs)] if jobs else []
            for runtime, model, t, backend in order:
                tag = f"run {i + 1}/{args.runs} {LABEL[runtime]} {model} {backend} {t}t"
                t0 = time.time()
                try:
                    r = bench.run(runtime, model, t, backend)
                except Exception as e:  # noqa: BLE001 - a failed measurement is reported, the rest goes on
                    say(f"{tag}: FAILED: {e}")
                    failures.append({"run": i, "runtime": runtime, "model": model, "threads": t, "backend": backend, "error": str(e)})
                    continue
                r["run"] = i
                r["figures"] = figures_of(r)
                raw.append(r)
                f = r["figures"]
                say(f"{tag}: load {f['cold_load_s']:.1f} s, warm {f['warm_load_s']:.1f} s, "
                    f"TTFT200 {f.get('ttft_p200_ms') or 0:.0f} ms, decode {f.get('decode_tok_s') or 0:.1f} tok/s, "
                    f"RSS {f['peak_rss_mb'] or 0:.0f} MB, {f['download_mb']:.0f} MB ({time.time() - t0:.0f} s)")
    server.shutdown()

    report = build_report(raw, failures, plan, variants, backends, runtimes, args, {
        "chromium": chromium_version, "webgpu_probe": gpu, "cpus": os.cpu_count(), "platform": platform.platform(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "wall_s": round(time.time() - t_start, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    })
    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json = args.out / f"{stamp}.json"
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    try:
        from chart import render_chart
        png = render_chart(report, args.out / f"{stamp}.png")
        shutil.copyfile(png, args.out / "latest.png")
        say(f"chart: {png} (and latest.png)")
    except Exception as e:  # noqa: BLE001 - the numbers are already written
        say(f"chart failed: {e}")
    say(f"results: {out_json} (and latest.json)")
    return 1 if failures and not raw else 0


def build_report(raw, failures, plan, variants, backends, runtimes, args, meta) -> dict:
    groups: dict[str, dict] = {}
    for r in raw:
        key = f"{r['runtime']}|{r['model']}|{r['backend']}|{r['threads']}"
        groups.setdefault(key, {"runtime": r["runtime"], "label": LABEL[r["runtime"]], "model": r["model"],
                                "backend": r["backend"], "threads": r["threads"], "runs": []})["runs"].append(r)
    for g in groups.values():
        keys = {k for r in g["runs"] for k in r["figures"]}
        g["summary"] = {k: summarize([r["figures"].get(k) for r in g["runs"]]) for k in sorted(keys)}

    # Same greedy tokens: each comparator run vs the intab run of the same run index and threads
    # (the default variant first), per prompt; and each intab variant vs the first variant.
    def tokens(r):
        return {g["name"]: g["token_ids"] for g in r["cold"]["runs"] if g.get("token_ids")}

    def is_prefix(r, name):   # wllama's ids: the first tokens of that prompt only (pages/wllama.mjs)
        return any(g["name"] == name and g.get("token_ids_prefix") for g in r["cold"]["runs"])

    checks = []
    for r in raw:
        if r["backend"] != "wasm":
            continue
        refs = [x for x in raw if x["runtime"] == "intab" and x["model"] == variants[0] and x["threads"] == r["threads"]
                and x["backend"] == "wasm" and x is not r]
        if r["runtime"] == "intab" and r["model"] == variants[0]:
            continue
        if not refs:
            continue
        ref = min(refs, key=lambda x: abs(x["run"] - r["run"]))
        a, b = tokens(ref), tokens(r)
        for name in a:
            if name in b:
                n = min(len(a[name]), len(b[name]))
                first_diff = next((i for i in range(n) if a[name][i] != b[name][i]), None)
                same_len = len(a[name]) == len(b[name]) or (is_prefix(r, name) and len(a[name]) >= len(b[name]))
                checks.append({"runtime": r["runtime"], "model": r["model"], "threads": r["threads"], "run": r["run"],
                               "prompt": name, "same": first_diff is None and same_len,
                               "first_difference_at": first_diff, "tokens": n})
    prompt_ids_ok = [g.get("prompt_ids_match") for r in raw if r["runtime"] == "tjs" for g in r["cold"]["runs"]]
    wllama_prompt_ok = [g.get("prompt_ids_match") for r in raw if r["runtime"] == "wllama" for g in r["cold"]["runs"]]
    return {
        "meta": {**meta, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                 "variants": variants, "backends": backends, "runtimes": runtimes, "comparator_model": COMPARATOR_ID,
                 "prompts": [{"name": p["name"], "tokens": len(p["ids"]), "new_tokens": p["max_tokens"]} for p in plan["prompts"]],
                 "units": "MB = 1e6 bytes; RSS = VmHWM of the renderer process; times from performance.now()/perf_counter"},
        "groups": groups,
        "same_tokens": checks,
        "tjs_prompt_ids_match_intab": prompt_ids_ok,
        "wllama_prompt_tokens_match_intab": wllama_prompt_ok,
        "failures": failures,
    }


def print_report(report: dict) -> None:
    meta, groups = report["meta"], report["groups"]
    print()
    print(f"intab benchmark, {meta['date']}, Chromium {meta['chromium']}, {meta['cpus']} CPUs, "
          f"load avg {meta['loadavg_before'][0]:.1f} -> {meta['loadavg_after'][0]:.1f}, {meta['wall_s']:.0f} s")
    print("prompts: " + ", ".join(f"{p['name']} = {p['tokens']} tokens ({p['new_tokens']} new)" for p in meta["prompts"]))
    print("median [min-max] over runs; intab figures from the engine's timers; ratios = intab / comparator")
    for backend, t in meta["backends"]:
        for v in meta["variants"]:
            key = lambda rt, m: f"{rt}|{m}|{backend}|{t}"  # noqa: E731
            intab = groups.get(key("intab", v))
            tjs = groups.get(key("tjs", meta["comparator_model"]))
            comps = [(rt, groups.get(key(rt, v if rt == "wllama" else meta["comparator_model"])))
                     for rt in COMPARATORS if rt in meta["runtimes"]]
            if not intab:
                continue
            print()
            print(f"## {v}, {backend.upper()} {t} thread{'s' if t > 1 else ''}  ({len(intab['runs'])} intab runs)")
            head = ["figure", "intab", *(LABEL[rt] for rt, _ in comps), *(f"intab/{LABEL[rt]}" for rt, _ in comps)]
            rows = []
            for k, label, unit, higher, f in FIGURES:
                s = intab["summary"].get(k)
                cs = [g["summary"].get(k) if g else None for _, g in comps]
                if not s and not any(cs):
                    continue
                ratios = [f"{s['median'] / c['median']:.2f}x" if s and c and c["median"] else "-" for c in cs]
                rows.append([f"{label} ({unit}{', higher better' if higher else ''})", fmt_stat(s, f),
                             *(fmt_stat(c, f) for c in cs), *ratios])
            markdown_table(head, rows)
            print(f"targets (issue 4, WASM 2 threads){'' if (backend, t) == ('wasm', 2) else ' - shown for reference'}:")
            for k, label, test, desc in TARGETS:
                s = intab["summary"].get(k)
                c = tjs["summary"].get(k) if tjs else None
                if not s:
                    print(f"  [ -  ] {label} {desc}: not measured")
                    continue
                ok = test(s["median"], c["median"] if c else None)
                extra = f" ({s['median'] / c['median']:.2f}x)" if k == "decode_tok_s" and c else ""
                print(f"  [{'PASS' if ok else 'FAIL'}] {label} {desc}: {s['median']:.1f}{extra}")
            short, long_ = intab["summary"].get("decode_ctx0_tok_s"), intab["summary"].get("decode_ctx2048_tok_s")
            if short and long_ and short["median"]:
                r = long_["median"] / short["median"]
                print(f"  [{'PASS' if r >= 0.7 else 'FAIL'}] decode at context 2048 >= 0.7x decode at context 0 (issue 15): {r:.2f}x")
    print()
    by = {}
    for c in report["same_tokens"]:
        by.setdefault((c["runtime"], c["model"], c["threads"]), []).append(c)
    for (rt, m, t), cs in sorted(by.items()):
        ok = all(c["same"] for c in cs)
        bad = [f"{c['prompt']} run {c['run'] + 1} from token {c['first_difference_at']}" for c in cs if not c["same"]]
        who = LABEL[rt] if rt != "intab" else f"intab {m}"
        print(f"same tokens as intab ({meta['variants'][0]}), {who}, {t}t: {'yes' if ok else 'no'}"
              f" ({len(cs)} generations, {sum(c['tokens'] for c in cs)} tokens compared{'; differ: ' + ', '.join(bad) if bad else ''})")
    if report["tjs_prompt_ids_match_intab"]:
        print(f"transformers.js prompt ids == intab's: {'yes' if all(report['tjs_prompt_ids_match_intab']) else 'no'}")
    if report.get("wllama_prompt_tokens_match_intab"):
        print("wllama's prompt token counts == intab's (it tokenizes the templated text itself): "
              f"{'yes' if all(report['wllama_prompt_tokens_match_intab']) else 'no'}")
    for f in report["failures"]:
        print(f"FAILED: run {f['run'] + 1} {LABEL[f['runtime']]} {f['model']} {f['backend']} {f['threads']}t: {f['error']}")


if __name__ == "__main__":
    sys.exit(main())
