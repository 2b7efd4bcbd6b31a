"""The comparators' model: the same network as intab's default variant, in the layout that
transformers.js loads from a local path (and that the bare onnxruntime-web loop runs).

    <out>/<COMPARATOR_ID>/onnx/model.onnx          fp32, head="logits" (inputs input_ids,
                                                    attention_mask, position_ids, past_key_values.N.*;
                                                    outputs logits [1, S, vocab], present.N.*)
    <out>/<COMPARATOR_ID>/config.json, generation_config.json, tokenizer.json,
                          tokenizer_config.json (with chat_template: transformers.js reads it there only)

Built from the same GGUF as the intab folder, with models.graph.build_graph(..., head="logits").
Idempotent: a stamp of the GGUF's sha256, models/*.py and this file; "up to date" when unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

COMPARATOR_ID = "smollm2-135m-instruct-logits"
TEXT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def _code_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted((root / "models").glob("*.py")) + [Path(__file__)]:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build_comparator_model(root: Path, cache: Path, intab_dir: Path, say=print) -> Path:
    """Write (or reuse) cache/bench/models/<COMPARATOR_ID>/ and return it. `intab_dir` is the
    prepared intab folder of the default recipe: its text files are reused as they are."""
    from models.prepare import sha256_file
    from models.recipes import DEFAULT
    from models.source import fetch_gguf

    out = cache / "bench" / "models" / COMPARATOR_ID
    gguf_path = fetch_gguf(DEFAULT, cache)
    stamp = {"gguf_sha256": sha256_file(gguf_path), "code": _code_digest(root),
             "text": {n: sha256_file(intab_dir / n) for n in TEXT_FILES}}
    stamp_path = out / ".stamp.json"
    if stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp and (out / "onnx" / "model.onnx").exists():
        say(f"comparator model {COMPARATOR_ID}: up to date (inputs unchanged), skipping")
        return out

    import onnx

    from models.gguf_source import GGUFModel
    from models.graph import build_graph, weights_from_gguf

    t0 = time.time()
    say(f"comparator model {COMPARATOR_ID}: building fp32 logits graph from {gguf_path.name}")
    stamp_path.unlink(missing_ok=True)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    gguf = GGUFModel(gguf_path)
    cfg = gguf.config()
    model = build_graph(cfg, weights_from_gguf(cfg, gguf.float32), head="logits")
    tmp = out / "onnx" / "model.onnx.part"
    onnx.save(model, str(tmp))
    tmp.replace(out / "onnx" / "model.onnx")
    del model
    for n in TEXT_FILES:
        (out / n).unlink(missing_ok=True)
        try:
            os.link(intab_dir / n, out / n)
        except OSError:
            shutil.copy2(intab_dir / n, out / n)
    stamp_path.write_text(json.dumps(stamp))
    size = (out / "onnx" / "model.onnx").stat().st_size
    say(f"comparator model {COMPARATOR_ID}: built in {time.time() - t0:.1f} s, {size / 1e6:.1f} MB")
    return out
