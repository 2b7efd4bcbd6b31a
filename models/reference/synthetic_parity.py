"""Reference logits of transformers on the synthetic GGUFs (models/synthetic.py), and the same
comparison against intab's ONNX graph under onnxruntime.

    python3 -m models.reference.synthetic_parity                 # tiny models: writes tests/golden/synthetic.json
    python3 -m models.reference.synthetic_parity --check         # compare with the file, write nothing
    python3 -m models.reference.synthetic_parity --full qwen2.5-0.5b,llama3.2-1b   # full shapes: report only

Needs requirements/reference.txt (torch, transformers). For each model: a seeded prompt of random
token ids, transformers' greedy continuation (fp32, eager attention), and per step the top-10
logits and the log-sum-exp; the full shapes are also run through intab's graph here and the
differences printed (tests/test_synthetic.py does that for the tiny ones from the recorded file).

Where transformers' GGUF loader reads a file differently from llama.cpp (shared/notes/model.md),
the reference is given the value llama.cpp uses, so both run the same network; `overrides` in the
output records each one:
- qwen3: head_dim from `attention.key_length` (transformers ignores it and defaults to 128);
- gemma3: query_pre_attn_scalar = head_dim (transformers' default is 256);
- llama with `rope_freqs.weight` (Llama 3): rope_parameters llama3 with the parameters the factors
  were made from (transformers' GGUF loader ignores the tensor).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from models.parity import TOP, compare, intab_steps  # noqa: E402
from models.synthetic import SHAPES, TINY, Shape, build_model, sha256, write_gguf  # noqa: E402

OUT = ROOT / "tests" / "golden" / "synthetic.json"
PROMPT_LEN = 24
STEPS = 8


def overrides(shape: Shape) -> dict:
    o: dict = {}
    if shape.arch == "qwen3":
        o["head_dim"] = shape.head_dim
    if shape.arch == "gemma3":
        o["query_pre_attn_scalar"] = shape.head_dim
    if shape.llama3_rope:   # transformers 5: rope_parameters carries the base too
        o["rope_parameters"] = {"rope_type": "llama3", "rope_theta": shape.rope_theta, **shape.llama3_rope}
    return o


def prompt_ids(shape: Shape) -> list[int]:
    rng = np.random.default_rng(1000 + shape.seed)
    return [int(i) for i in rng.integers(0, shape.vocab - 1, PROMPT_LEN)]   # the last id is <|endoftext|>


@torch.no_grad()
def reference(shape: Shape, gguf_path: Path) -> dict:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32, attn_implementation="eager", **overrides(shape))
    model.eval()
    ids = prompt_ids(shape)
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         do_sample=False, max_new_tokens=STEPS, eos_token_id=None, pad_token_id=0,
                         temperature=None, top_p=None, top_k=None)
    greedy = [int(t) for t in out[0, len(ids):]]
    # one forward over prompt + greedy (no cache): logits at the prompt's last position and each step
    logits = model(torch.tensor([ids + greedy[:-1]]), use_cache=False).logits[0, len(ids) - 1:].double()
    steps = []
    for row in logits:
        top = torch.topk(row, TOP)
        steps.append({"ids": [int(i) for i in top.indices], "logits": [float(v) for v in top.values],
                      "logsumexp": float(torch.logsumexp(row, 0)),
                      "margin": float(top.values[0] - top.values[1])})
    return {"name": shape.name, "arch": shape.arch, "gguf_sha256": sha256(gguf_path), "overrides": overrides(shape),
            "prompt_ids": ids, "greedy_ids": greedy, "steps": steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--full", default="", help="comma-separated SHAPES names, or 'all': built into .cache, reported")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.full:
        names = list(SHAPES) if args.full == "all" else args.full.split(",")
        bad = 0
        for name in names:
            shape = SHAPES[name]
            folder = build_model(shape, args.cache)
            gguf_path = args.cache / "sources" / f"synthetic-{name}" / f"{name}.gguf"
            ref = reference(shape, gguf_path)
            c = compare(ref, intab_steps(folder, ref["prompt_ids"], ref["greedy_ids"]))
            bad += c["top1"] + c["near_ties"] < c["steps"]
            print(f"{name}: {c}", flush=True)
        return 1 if bad else 0
    cases = []
    with tempfile.TemporaryDirectory() as d:
        for shape in TINY.values():
            path = write_gguf(shape, Path(d) / f"{shape.name}.gguf")
            cases.append(reference(shape, path))
            print(f"{shape.name}: greedy {cases[-1]['greedy_ids']}, min margin "
                  f"{min(s['margin'] for s in cases[-1]['steps']):.4f}", flush=True)
    data = {"reference": f"transformers {transformers.__version__} on models/synthetic.py's tiny GGUFs, fp32, eager, greedy",
            "versions": {"torch": torch.__version__, "numpy": np.__version__}, "cases": cases}
    text = json.dumps(data, indent=1) + "\n"
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT}: {'identical' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
