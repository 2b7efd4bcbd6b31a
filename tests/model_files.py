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
