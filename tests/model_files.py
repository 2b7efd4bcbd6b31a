"""Read a model folder's JSON files the way the worker hands them to Python."""
from __future__ import annotations

from pathlib import Path

NAMES = ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "manifest.json")


def model_files(folder: Path) -> dict[str, str]:
    return {n: (folder / n).read_text(encoding="utf-8") for n in NAMES}
