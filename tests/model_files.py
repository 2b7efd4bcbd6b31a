"""Read a model folder's JSON files the way the worker hands them to Python."""
from __future__ import annotations

from pathlib import Path

NAMES = ("tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "manifest.json")


def model_files(folder: Path) -> dict[str, str]:
    return {n: (folder / n).read_text(encoding="utf-8") for n in NAMES}


def run_async(coro):
    """Run a coroutine to completion on a fresh loop in a worker thread: pytest-playwright's sync
    API leaves an event loop marked running in the main thread, where asyncio.run() refuses."""
    from concurrent.futures import ThreadPoolExecutor
    import asyncio

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def one_tensor_gguf(path: Path, arch: str, data, raw_dtype=None) -> Path:
    """A GGUF of one layer's worth of metadata and a single token_embd tensor (`data`, or its bytes
    with `raw_dtype`): enough for the reader to reach the architecture and block-kind checks."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def node_json(module: str, names: str, expr: str, data=None):
    """The JSON value of the JavaScript expression `expr`, evaluated under Node with `names`
    (e.g. "kernelMisfit, roleTable") imported from web/<module> and `data` (JSON, on stdin) bound
    to `data`: how the CPython tests hold web/'s pure modules to their verdicts."""
    import json
    import shutil
    import subprocess

    import pytest

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    url = (Path(__file__).resolve().parents[1] / "web" / module).as_uri()
    src = (f"import {{ {names} }} from {json.dumps(url)};\n"
           "import { readFileSync } from 'node:fs';\n"
           "const data = JSON.parse(readFileSync(0, 'utf8'));\n"
           f"console.log(JSON.stringify({expr}));\n")
    out = subprocess.run(["node", "--input-type=module", "-e", src], input=json.dumps(data),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
