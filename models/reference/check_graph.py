"""Diagnostic: compare intab's ONNX decoder graph (docs/contracts.md §1) with transformers on the GGUF.

    python3 -m models.reference.check_graph [--graph .cache/build/<model_id>/model.onnx]
                                            [--cases capital,code_tabs_digits,long_summary] [--steps 8]

For each prompt of models/reference/prompts.json named in --cases:
  prefill   the whole prompt in one call (empty past): cand_logits / cand_ids / logsumexp against
            transformers' last-position logits; top-K id agreement; present.* against transformers'
            KV cache (keys after rotary).
  decode    --steps single-token calls feeding present.* back as past_key_values.*, teacher-forced
            on transformers' greedy tokens; each step compared like the prefill.
  chunked   the prompt in 2 chunks (positions P..P+S-1 for the second), both chunks' last position
            compared: checks position_ids and the causal mask with a non-empty past.
The reference logits come from one transformers forward over prompt + greedy tokens (fp32, eager).
Needs requirements/reference.txt (onnxruntime CPU). Prints a short report; exit status 1 when a
top-1 id differs from transformers where transformers' own top-1/top-2 margin is above 1e-3.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from models.graph import HEAD_DEFAULTS  # noqa: E402
from models.recipes import DEFAULT, RECIPES  # noqa: E402
from models.reference.make_golden import PROMPTS, load_model, load_tokenizer, template_ids  # noqa: E402
from models.source import fetch_gguf  # noqa: E402

TIE_MARGIN = 1e-3


def _kv(cache, i):
    if hasattr(cache, "layers"):
        return cache.layers[i].keys, cache.layers[i].values
    return cache[i][0], cache[i][1]


class Graph:
    def __init__(self, path: Path, cfg: dict, threads: int):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        t = time.perf_counter()
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.load_s = time.perf_counter() - t
        self.layers = cfg["num_hidden_layers"]
        self.kv_heads = cfg["num_key_value_heads"]
        self.head_dim = cfg["head_dim"]
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def empty_past(self) -> dict:
        z = np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32)
        return {f"past_key_values.{i}.{kv}": z for i in range(self.layers) for kv in ("key", "value")}

    def forward(self, ids: list[int], start: int, past: dict, k: int):
        feeds = {"input_ids": np.array([ids], np.int64),
                 "position_ids": np.arange(start, start + len(ids), dtype=np.int64)[None],
                 "num_candidates": np.array([k], np.int64), **HEAD_DEFAULTS, **past}
        t = time.perf_counter()
        outs = dict(zip(self.out_names, self.sess.run(None, feeds)))
        ms = (time.perf_counter() - t) * 1e3
        present = {f"past_key_values.{i}.{kv}": outs[f"present.{i}.{kv}"]
                   for i in range(self.layers) for kv in ("key", "value")}
        return outs["cand_logits"][0], outs["cand_ids"][0], float(outs["logsumexp"][0]), present, ms


def compare(ref_logits: torch.Tensor, cand_logits, cand_ids, lse) -> dict:
    """ref_logits: [vocab] float32 from transformers at the same position."""
    k = len(cand_ids)
    ref = ref_logits.double()
    top = torch.topk(ref, k + 1)
    ref_ids = top.indices[:k].numpy()
    ids = np.asarray(cand_ids)
    return {
        "top1_same": bool(ids[0] == ref_ids[0]),
        "ref_margin": float(top.values[0] - top.values[1]),
        "topk_same_order": int(np.argmax(ids != ref_ids)) if (ids != ref_ids).any() else k,  # common prefix
        "topk_set_overlap": len(set(ids.tolist()) & set(ref_ids.tolist())),
        "cand_sorted": bool(np.all(np.diff(cand_logits) <= 0)),
        "max_abs_cand_logit": float(np.max(np.abs(np.asarray(cand_logits, np.float64) - ref[ids].numpy()))),
        "abs_lse": abs(lse - float(torch.logsumexp(ref, 0))),
    }


def fmt(c: dict, k: int) -> str:
    return (f"top1 {'ok ' if c['top1_same'] else 'DIFF'} (ref margin {c['ref_margin']:.4f})  "
            f"top{k} order prefix {c['topk_same_order']:>2}/{k} set {c['topk_set_overlap']:>2}/{k}  "
            f"max|dlogit| {c['max_abs_cand_logit']:.2e}  |dlse| {c['abs_lse']:.2e}"
            + ("" if c["cand_sorted"] else "  NOT SORTED"))


@torch.no_grad()
def check_case(graph: Graph, model, tok, case: dict, steps: int, k: int, eos_id: int) -> list[dict]:
    _, prompt = template_ids(tok, case["messages"])
    S = len(prompt)
    # transformers greedy continuation (the path the decode steps are forced along)
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, S, dtype=torch.long),
                         do_sample=False, max_new_tokens=steps + 1, eos_token_id=eos_id, pad_token_id=eos_id)
    cont = out[0, S:].tolist()
    n = min(steps, len(cont) - 1) if cont and cont[-1] == eos_id else min(steps, len(cont))
    full = model(torch.tensor([prompt + cont[:n]]), use_cache=True)
    ref = full.logits[0].float()  # [S+n, vocab]
    cache = full.past_key_values
    print(f"\n[{case['name']}] prompt {S} tokens, {n} decode steps")
    rows = []

    # 1. prefill in one call
    cl, ci, lse, present, ms = graph.forward(prompt, 0, graph.empty_past(), k)
    c = compare(ref[S - 1], cl, ci, lse)
    kv_diff = 0.0
    for i in range(graph.layers):
        rk, rv = _kv(cache, i)
        kv_diff = max(kv_diff,
                      float(np.abs(present[f"past_key_values.{i}.key"] - rk[:, :, :S].numpy()).max()),
                      float(np.abs(present[f"past_key_values.{i}.value"] - rv[:, :, :S].numpy()).max()))
    print(f"  prefill  {ms:7.0f} ms  {fmt(c, k)}  max|dKV| {kv_diff:.2e}")
    rows.append({"case": case["name"], "kind": "prefill", "kv": kv_diff, **c})

    # 2. decode steps, KV fed back, teacher-forced on transformers' greedy tokens
    past, pos, step_ms = present, S, []
    worst = None
    for j in range(n):
        cl, ci, lse, past, ms = graph.forward([cont[j]], pos, past, k)
        pos += 1
        step_ms.append(ms)
        c = compare(ref[S + j], cl, ci, lse)
        rows.append({"case": case["name"], "kind": f"decode{j}", **c})
        if worst is None or c["max_abs_cand_logit"] > worst[1]["max_abs_cand_logit"] or not c["top1_same"]:
            worst = (j, c)
        if not c["top1_same"]:
            print(f"  decode step {j}: {fmt(c, k)}")
    if n:
        agree = sum(r["top1_same"] for r in rows[1:])
        print(f"  decode   {np.median(step_ms):7.1f} ms/step (median)  top1 {agree}/{n} agree; "
              f"worst step {worst[0]}: {fmt(worst[1], k)}")

    # 3. prefill in 2 chunks
    cut = S // 2
    cl1, ci1, lse1, p1, _ = graph.forward(prompt[:cut], 0, graph.empty_past(), k)
    c1 = compare(ref[cut - 1], cl1, ci1, lse1)
    cl2, ci2, lse2, _, _ = graph.forward(prompt[cut:], cut, p1, k)
    c2 = compare(ref[S - 1], cl2, ci2, lse2)
    print(f"  chunk 1 [0,{cut})  {fmt(c1, k)}")
    print(f"  chunk 2 [{cut},{S})  {fmt(c2, k)}")
    rows += [{"case": case["name"], "kind": "chunk1", **c1}, {"case": case["name"], "kind": "chunk2", **c2}]
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT.model_id)
    ap.add_argument("--graph", type=Path, help="default: .cache/build/<model_id>/model.onnx")
    ap.add_argument("--gguf", type=Path, help="default: the recipe's GGUF, fetched into .cache")
    ap.add_argument("--cases", default="capital,code_tabs_digits,chinese,long_summary")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("-k", type=int, default=0, help="num_candidates (default: the recipe's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    recipe = RECIPES[args.model]
    k = args.k or recipe.num_candidates
    graph_path = args.graph or ROOT / ".cache" / "build" / recipe.model_id / "model.onnx"
    cfg = json.loads((graph_path.parent / "config.json").read_text())
    gguf_path = args.gguf or fetch_gguf(recipe, ROOT / ".cache")
    torch.set_num_threads(args.threads)

    cases = {c["name"]: c for c in json.loads(PROMPTS.read_text(encoding="utf-8"))["cases"]}
    with tempfile.TemporaryDirectory() as d:
        tok, _, _ = load_tokenizer(gguf_path, Path(d))
    model = load_model(gguf_path)
    graph = Graph(graph_path, cfg, args.threads)
    print(f"graph {graph_path} ({graph_path.stat().st_size / 1e6:.0f} MB), session {graph.load_s:.1f} s, "
          f"K={k}, onnxruntime {ort.__version__} CPU {args.threads} threads")

    rows = []
    for name in args.cases.split(","):
        rows += check_case(graph, model, tok, cases[name], args.steps, k, cfg["eos_token_id"])

    bad = [r for r in rows if not r["top1_same"] and r["ref_margin"] > TIE_MARGIN]
    ties = [r for r in rows if not r["top1_same"] and r["ref_margin"] <= TIE_MARGIN]
    print(f"\nsummary over {len(rows)} positions: top-1 agrees at {sum(r['top1_same'] for r in rows)}; "
          f"max|dlogit| {max(r['max_abs_cand_logit'] for r in rows):.2e}, "
          f"max|dlse| {max(r['abs_lse'] for r in rows):.2e}, "
          f"max|dKV| {max(r.get('kv', 0) for r in rows):.2e}, "
          f"min top-{k} set overlap {min(r['topk_set_overlap'] for r in rows)}/{k}; "
          f"top-1 differences: {len(bad)} real, {len(ties)} at near-ties (margin <= {TIE_MARGIN})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
