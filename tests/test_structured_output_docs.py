"""Every ```python example of docs/structured-output.md runs, on the real model under CPython."""
from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path

import pytest

from model_files import model_files

DOC = Path(__file__).resolve().parent.parent / "docs" / "structured-output.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture(scope="module")
def engine(built_model_dir):
    from intab.engine import Engine
    from intab_host.ort_backend import OrtBackend
    cfg = json.loads((built_model_dir / "config.json").read_text())
    return Engine.from_files(model_files(built_model_dir), OrtBackend(built_model_dir / "model.onnx", cfg))


@pytest.mark.parametrize("code", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example_runs(engine, code):
    from intab.constrain import UnsupportedSchema
    compiled = compile(code, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    ns = {"engine": engine, "json": json, "re": re, "UnsupportedSchema": UnsupportedSchema}
    result = eval(compiled, ns)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
