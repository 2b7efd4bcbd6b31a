"""Shared fixtures: the real model and the assembled site, built by the same code as build.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "smollm2-135m-instruct.greedy.json"


@pytest.fixture(scope="session")
def built_model_dir() -> Path:
    """The prepared SmolLM2 folder (model.onnx, tokenizer.json, configs, manifest); built if needed."""
    sys.path.insert(0, str(ROOT))
    from models.prepare import prepare
    from models.recipes import DEFAULT
    return prepare(DEFAULT, ROOT / ".cache")


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    """The prepared Gemma 3 270M folder (a base model, onnxruntime only); built if needed."""
    sys.path.insert(0, str(ROOT))
    from models.prepare import prepare
    from models.recipes import GEMMA3_270M
    return prepare(GEMMA3_270M, ROOT / ".cache")


@pytest.fixture(scope="session")
def built_static(built_model_dir: Path) -> Path:
    """The assembled static/ site (idempotent: cheap when already built)."""
    import build
    build.build()
    return build.STATIC


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def pytest_collection_modifyitems(config, items):
    """Run the CPython tests first and the browser tests last: quick failures come quickly."""
    items.sort(key=lambda item: "browser" in Path(str(item.fspath)).parts)
