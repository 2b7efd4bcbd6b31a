"""Expected sampling distributions for tests/test_sampling_exact.py, from transformers' own logits
processors on the real model's logits (needs requirements/reference.txt: torch, transformers).

For each prompt the full logits row of the last position comes from the ONNX graph on
onnxruntime (OrtBackend, asked for every token as a candidate: the same numbers the test's
backend computes); transformers' RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper and MinPLogitsWarper are applied in the order `generate`
applies them, and the resulting probabilities are written (those >= 1e-7, plus the rest's mass).

    python -m models.reference.make_sampling_reference
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "py")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers.generation.logits_process import (LogitsProcessorList, MinPLogitsWarper,  # noqa: E402
                                                    RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

OUT = ROOT / "tests" / "golden" / "sampling_reference.json"
PROMPTS = [
    [{"role": "user", "content": "Write one sentence about the sea."}],
    [{"role": "user", "content": "List three fruits."}],
    [{"role": "user", "content": "What is the capital of France?"}],
]
CONFIGS = [
    {"temperature": 0.8, "top_p": 0.9},
    {"temperature": 0.7, "top_k": 40},
    {"temperature": 1.3, "top_p": 0.95, "repetition_penalty": 1.3},
    {"temperature": 1.0},
    {"temperature": 1.0, "min_p": 0.02},
    {"temperature": 0.8, "repetition_penalty": 1.2},
]


def warp(z: np.ndarray, prompt: list[int], cfg: dict) -> np.ndarray:
    procs = LogitsProcessorList()
    if cfg.get("repetition_penalty", 1.0) != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(cfg["repetition_penalty"]))
    procs.append(TemperatureLogitsWarper(cfg["temperature"]))
    if cfg.get("top_k"):
        procs.append(TopKLogitsWarper(cfg["top_k"]))
    if cfg.get("top_p", 1.0) < 1.0:
        procs.append(TopPLogitsWarper(cfg["top_p"]))
    if cfg.get("min_p"):
        procs.append(MinPLogitsWarper(cfg["min_p"]))
    scores = procs(torch.tensor([prompt]), torch.tensor(z[None], dtype=torch.float32))
    return torch.softmax(scores.double(), dim=-1)[0].numpy()


async def main() -> None:
    from intab.engine import Engine
    from intab_host.ort_backend import OrtBackend

    d = ROOT / ".cache" / "build" / "smollm2-135m-instruct"
    names = ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "manifest.json"]
    files = {n: (d / n).read_text() for n in names}
    config = json.loads(files["config.json"])
    backend = OrtBackend(d / "model.onnx", config)
    engine = Engine.from_files(files, backend)
    V = config["vocab_size"]
    cases = []
    for messages in PROMPTS:
        prompt = engine.prompt_ids(messages)
        await backend.truncate(0)
        c = await backend.forward(prompt, 0, V)
        z = np.empty(V, np.float32)
        z[list(c.ids)] = np.asarray(c.logits, np.float32)
        for cfg in CONFIGS:
            p = warp(z, prompt, cfg)
            keep = np.flatnonzero(p >= 1e-7)
            cases.append({"messages": messages, "prompt_ids": prompt, "config": cfg,
                          "probs": {int(i): float(p[i]) for i in keep}, "rest": float(1 - p[keep].sum())})
    OUT.write_text(json.dumps({"reference": "transformers 5.23 logits processors on the graph's logits (onnxruntime)",
                               "cases": cases}))
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    asyncio.run(main())
