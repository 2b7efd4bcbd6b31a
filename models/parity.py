"""intab's graph under onnxruntime against recorded reference logits (no torch here: the test suite
and models/reference/synthetic_parity.py share it)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

TOP = 10            # reference logits recorded per step
TIE = 1e-3          # top-1/top-2 margins at or below this are near-ties: either token is right


def intab_steps(folder: Path, ids: list[int], forced: list[int], k: int = TOP, threads: int = 2) -> list[dict]:
    """Prefill `ids`, then one decode step per forced token (the reference's greedy tokens, minus
    the last): per step the top-k candidates and the log-sum-exp."""
    from intab_host.ort_backend import OrtBackend

    cfg = json.loads((Path(folder) / "config.json").read_text())
    backend = OrtBackend(Path(folder) / "model.onnx", cfg, threads=threads)

    async def run():
        out = [await backend.forward(ids, 0, k)]
        for j, t in enumerate(forced[:-1]):
            out.append(await backend.forward([t], len(ids) + j, k))
        return out

    return [{"ids": list(c.ids), "logits": list(c.logits), "logsumexp": c.logsumexp} for c in asyncio.run(run())]


def compare(ref: dict, got: list[dict]) -> dict:
    """Max |dlogit| over the reference's top ids that intab also returns, |dlse|, how many steps'
    top-1 agree, and how many disagree only at a near-tie."""
    worst = lse = 0.0
    top1 = ties = missing = 0
    for r, g in zip(ref["steps"], got):
        mine = dict(zip(g["ids"], g["logits"]))
        missing += sum(i not in mine for i in r["ids"][:3])
        shared = [(mine[i], v) for i, v in zip(r["ids"], r["logits"]) if i in mine]
        worst = max([worst] + [abs(a - b) for a, b in shared])
        lse = max(lse, abs(g["logsumexp"] - r["logsumexp"]))
        if g["ids"][0] == r["ids"][0]:
            top1 += 1
        elif r["margin"] <= TIE:
            ties += 1
    return {"max_dlogit": worst, "max_dlse": lse, "top1": top1, "near_ties": ties, "top3_missing": missing,
            "steps": len(ref["steps"])}
